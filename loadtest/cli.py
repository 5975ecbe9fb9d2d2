"""``qwen-loadtest``: run, sweep, compare, report.

Flags follow ``vllm bench serve`` where one exists (``--base-url --endpoint --model --dataset
--num-prompts --request-rate --burstiness --max-concurrency --random-input-len --random-output-len
--ignore-eos --goodput``), so its users feel at home.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

from loadtest.arrivals import arrival_kind

logger = logging.getLogger(__name__)


def _echo(text: str) -> None:
    """CLI output (stdout)."""
    sys.stdout.write(text + "\n")


def _add_endpoint_args(p: argparse.ArgumentParser, prefix: str = "", with_url: bool = True) -> None:
    if with_url:
        p.add_argument(f"--{prefix}base-url", default="http://127.0.0.1:8000", help="server root (no /v1)")
    p.add_argument(f"--{prefix}model", default=None, help="model field; default: first id of /v1/models")
    p.add_argument(f"--{prefix}api-key", default=None, help="bearer token (default $OPENAI_API_KEY)")


def _add_common_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("request")
    g.add_argument("--endpoint", choices=["chat", "completions"], default="chat")
    g.add_argument("--header", action="append", default=[], metavar="K:V", help="extra header (repeatable)")
    g.add_argument("--ignore-eos", action="store_true", help="exact output lengths: ignore_eos + min_tokens")
    g.add_argument(
        "--thinking", choices=["on", "off"], default=None, help="chat_template_kwargs.enable_thinking"
    )
    g.add_argument("--send-task-header", action="store_true", help="send the workload task as x-qwen-task")
    g.add_argument("--extra-body", default=None, help="JSON merged into every request body")
    g.add_argument("--timeout", type=float, default=600.0, help="per-request timeout, s")
    g.add_argument("--usage-tolerance", type=int, default=0, help="allowed usage minus counted chunks")
    w = p.add_argument_group("workload")
    w.add_argument(
        "--dataset",
        choices=["random", "sharegpt", "task-mix", "shared-prefix", "multi-turn"],
        default="random",
    )
    w.add_argument("--dataset-path", default=None, help="ShareGPT-format JSON (default: packaged ShareGPT)")
    w.add_argument("--num-prompts", type=int, default=200)
    w.add_argument("--random-input-len", default="1024", help="N | LOW:HIGH | normal:MEAN,STD")
    w.add_argument("--random-output-len", default="128", help="N | LOW:HIGH | normal:MEAN,STD")
    w.add_argument("--random-range-ratio", type=float, default=0.0, help="N -> uniform N*(1±r)")
    w.add_argument("--sharegpt-output-len", type=int, default=None)
    w.add_argument("--task-weights", default="code=1,math=1,general=1,reasoning=1,vision=0")
    w.add_argument("--num-prefixes", type=int, default=4)
    w.add_argument("--prefix-len", type=int, default=512)
    w.add_argument("--prefix-as-system", action="store_true")
    w.add_argument("--turns", default="3", help="multi-turn: turns per conversation (N | LOW:HIGH)")
    w.add_argument("--think-time", type=float, default=0.0, help="multi-turn: s between reply and next turn")
    w.add_argument("--tokenizer", default=None, help="tokenizer dir (default: packaged Qwen tokenizer)")
    w.add_argument("--seed", type=int, default=0)
    lg = p.add_argument_group("load")
    lg.add_argument("--request-rate", type=float, default=math.inf, help="req/s (default inf)")
    lg.add_argument("--burstiness", type=float, default=1.0, help="gamma shape: 1 Poisson, <1 bursty")
    lg.add_argument(
        "--arrival",
        choices=["poisson", "gamma", "constant"],
        default=None,
        help="constant = evenly spaced (burstiness inf)",
    )
    lg.add_argument("--max-concurrency", type=int, default=None)
    lg.add_argument("--warmup", type=int, default=0, help="warm-up requests, excluded")
    lg.add_argument("--duration", type=float, default=None, help="stop dispatching after N s")
    lg.add_argument("--max-error-rate", type=float, default=None, help="stop above this failed fraction")
    o = p.add_argument_group("output")
    o.add_argument("--goodput", nargs="+", default=[], metavar="NAME:MS", help="SLOs, e.g. ttft:500 tpot:50")
    o.add_argument("--percentiles", default="50,90,99")
    o.add_argument("--output", default=None, help="results directory")
    o.add_argument("--metadata", nargs="*", default=[], metavar="K=V")
    o.add_argument("--no-progress", action="store_true")
    o.add_argument("-v", "--verbose", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of ``qwen-loadtest``."""
    parser = argparse.ArgumentParser(prog="qwen-loadtest", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="one load against one endpoint")
    _add_endpoint_args(run)
    _add_common_args(run)
    sw = sub.add_parser("sweep", help="low load to saturation, with the throughput-latency curve")
    _add_endpoint_args(sw)
    _add_common_args(sw)
    sw.add_argument("--mode", choices=["rate", "concurrency"], default="rate")
    sw.add_argument("--factor", type=float, default=2.0)
    sw.add_argument("--start-factor", type=float, default=0.5)
    sw.add_argument("--max-steps", type=int, default=8)
    sw.add_argument("--min-gain", type=float, default=0.05)
    sw.add_argument("--slo-fraction", type=float, default=0.9)
    cmp = sub.add_parser("compare", help="endpoints A and B under the same workload, interleaved")
    cmp.add_argument("--a-base-url", required=True)
    cmp.add_argument("--b-base-url", required=True)
    _add_endpoint_args(cmp, "a-", with_url=False)
    _add_endpoint_args(cmp, "b-", with_url=False)
    cmp.add_argument("--a-label", default="A")
    cmp.add_argument("--b-label", default="B")
    cmp.add_argument("--mode", choices=["rounds", "concurrent"], default="rounds")
    cmp.add_argument("--rounds", type=int, default=4)
    cap = cmp.add_argument_group("capacity at an SLO (a compare per stream count)")
    levels = cap.add_mutually_exclusive_group()
    levels.add_argument("--concurrency-list", default=None, metavar="N,N,...",
                        help="compare at each of these stream counts (overrides --max-concurrency)")
    levels.add_argument("--rate-list", default=None, metavar="R,R,...",
                        help="compare at each of these request rates, req/s (overrides --request-rate)")
    cap.add_argument("--prompts-per-level", type=float, default=None,
                     help="num-prompts = this x the level: conversations per stream, or seconds of arrivals")
    cap.add_argument("--capacity-metric", default="p99_ttft_ms", help="latency key the SLOs bound")
    cap.add_argument("--capacity-slo", nargs="+", type=float, default=[1000.0, 2000.0], metavar="MS")
    _add_common_args(cmp)
    rep = sub.add_parser("report", help="rebuild the HTML report of a results directory")
    rep.add_argument("dir")
    return parser


def _headers(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        k, sep, v = item.partition(":")
        if not sep:
            raise SystemExit(f"--header needs K:V, got {item!r}")
        out[k.strip()] = v.strip()
    return out


def _resolve_model(base_url: str, model: str | None, api_key: str | None) -> str:
    if model:
        return model
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    r = httpx.get(base_url.rstrip("/").removesuffix("/v1") + "/v1/models", headers=headers, timeout=30)
    r.raise_for_status()
    return str(r.json()["data"][0]["id"])


def client_options(a: argparse.Namespace, prefix: str = "", base_url: str | None = None) -> Any:
    """ClientOptions from parsed args (``prefix`` "a_"/"b_" for compare)."""
    from loadtest.client import ClientOptions

    url = base_url or a.base_url
    key = getattr(a, f"{prefix}api_key") or os.environ.get("OPENAI_API_KEY")
    return ClientOptions(
        base_url=url,
        endpoint=a.endpoint,
        model=_resolve_model(url, getattr(a, f"{prefix}model"), key),
        api_key=key,
        headers=_headers(a.header),
        ignore_eos=a.ignore_eos,
        thinking=None if a.thinking is None else a.thinking == "on",
        send_task_header=a.send_task_header,
        extra_body=json.loads(a.extra_body) if a.extra_body else {},
        timeout_s=a.timeout,
        usage_tolerance=a.usage_tolerance,
    )


def workload_config(a: argparse.Namespace) -> Any:
    """WorkloadConfig from parsed args."""
    from loadtest.workloads import LengthDist, WorkloadConfig

    weights = {k.strip(): float(v) for k, v in (x.split("=") for x in a.task_weights.split(",") if x.strip())}
    return WorkloadConfig(
        dataset=a.dataset,
        num_prompts=a.num_prompts,
        seed=a.seed,
        input_len=LengthDist.parse(a.random_input_len, a.random_range_ratio),
        output_len=LengthDist.parse(a.random_output_len, a.random_range_ratio),
        dataset_path=a.dataset_path,
        sharegpt_output_len=a.sharegpt_output_len,
        task_weights=weights,
        num_prefixes=a.num_prefixes,
        prefix_len=a.prefix_len,
        prefix_as_system=a.prefix_as_system,
        turns=LengthDist.parse(a.turns),
        tokenizer=a.tokenizer,
    )


def load_config(a: argparse.Namespace) -> Any:
    """LoadConfig from parsed args."""
    from loadtest.runner import LoadConfig

    burst = math.inf if a.arrival == "constant" else a.burstiness
    return LoadConfig(
        request_rate=a.request_rate,
        burstiness=burst,
        max_concurrency=a.max_concurrency,
        warmup=a.warmup,
        duration_s=a.duration,
        max_error_rate=a.max_error_rate,
        think_time_s=a.think_time,
        seed=a.seed,
        disable_tqdm=a.no_progress,
    )


def _outdir(a: argparse.Namespace, kind: str) -> Path:
    if a.output:
        return Path(a.output)
    return Path("results") / f"{kind}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _meta(a: argparse.Namespace, wl: Any) -> dict[str, Any]:
    meta = {
        "dataset": wl.dataset,
        "num_prompts": wl.num_prompts,
        "seed": wl.seed,
        "input_len": wl.input_len.describe(),
        "output_len": wl.output_len.describe(),
        "arrivals": arrival_kind(a.request_rate, math.inf if a.arrival == "constant" else a.burstiness),
        "ignore_eos": a.ignore_eos,
        "date": dt.datetime.now().isoformat(timespec="seconds"),
    }
    meta.update(dict(kv.split("=", 1) for kv in a.metadata))
    return meta


def cmd_run(a: argparse.Namespace) -> int:
    """``run``: one load; prints the table, writes JSON, JSONL and HTML."""
    from loadtest import report
    from loadtest.metrics import parse_goodput, parse_percentiles
    from loadtest.runner import result_meta, run_once
    from loadtest.workloads import build_workload

    opts, wl, load = client_options(a), workload_config(a), load_config(a)
    pcts, goodput = parse_percentiles(a.percentiles), parse_goodput(a.goodput)
    convs = build_workload(wl)
    res = asyncio.run(run_once(opts, convs, load))
    meta = {**result_meta(opts, load, res), **_meta(a, wl)}
    summary = report.summarize(res.records, res.duration_s, pcts, goodput, meta)
    _echo(report.console_table(summary))
    out = _outdir(a, "run")
    report.write_run_outputs(out, summary, res.records)
    _echo(f"results: {out / report.RESULTS_FILE}  report: {out / report.HTML_FILE}")
    return 0 if summary["completed"] else 1


def cmd_sweep(a: argparse.Namespace) -> int:
    """``sweep``: steps to saturation; writes sweep.json and sweep.html plus one dir per step."""
    from loadtest import report
    from loadtest.metrics import parse_goodput, parse_percentiles
    from loadtest.sweep import SweepConfig, run_sweep
    from loadtest.workloads import build_workload

    opts, wl, load = client_options(a), workload_config(a), load_config(a)
    pcts, goodput = parse_percentiles(a.percentiles), parse_goodput(a.goodput)
    cfg = SweepConfig(
        mode=a.mode,
        factor=a.factor,
        start_factor=a.start_factor,
        max_steps=a.max_steps,
        min_gain=a.min_gain,
        slo_fraction=a.slo_fraction,
    )
    res = asyncio.run(run_sweep(opts, build_workload(wl), load, cfg, pcts, goodput))
    out = _outdir(a, "sweep")
    out.mkdir(parents=True, exist_ok=True)
    for i, (p, recs) in enumerate(zip(res.points, res.records, strict=False)):
        step = out / f"step-{i:02d}"
        step.mkdir(exist_ok=True)
        report.write_records(step / report.REQUESTS_FILE, recs)
        report.write_json(step / report.RESULTS_FILE, p)
    doc = {
        "mode": a.mode,
        "stop_reason": res.stop_reason,
        "saturation": res.saturation,
        "points": res.points,
        **_meta(a, wl),
        "base_url": opts.base_url,
        "model_id": opts.model,
    }
    report.write_json(out / "sweep.json", doc)
    (out / "sweep.html").write_text(report.render_sweep_html(res.points, res.stop_reason, a.mode))
    _echo(
        f"{'load':>10}{'req/s':>10}{'out tok/s':>12}{'ttft p50':>10}{'ttft p99':>10}{'itl p50':>9}{'err':>6}"
    )
    for p in res.points:
        _echo(
            f"{p['load']:>10.3g}{p['request_throughput']:>10.2f}{p['output_throughput']:>12.1f}"
            f"{p['median_ttft_ms']:>10.1f}{p.get('p99_ttft_ms', 0):>10.1f}{p['median_itl_ms']:>9.1f}{p['failed']:>6}"
        )
    sat = res.saturation or {}
    _echo(
        f"stopped: {res.stop_reason}; saturation at {a.mode}={sat.get('load', 0):.3g}: "
        f"{sat.get('output_throughput', 0):.1f} out tok/s. sweep: {out / 'sweep.json'}"
    )
    return 0


def _compare_once(a: argparse.Namespace, wl: Any, load: Any, out: Path) -> dict[str, Any]:
    """One A/B comparison (``wl``, ``load``): prints the table, writes compare.json/.html and the records."""
    from loadtest import report
    from loadtest.compare import compare_table, run_compare
    from loadtest.metrics import parse_goodput, parse_percentiles
    from loadtest.workloads import build_workload

    oa, ob = client_options(a, "a_", a.a_base_url), client_options(a, "b_", a.b_base_url)
    pcts, goodput = parse_percentiles(a.percentiles), parse_goodput(a.goodput)
    res, records = asyncio.run(
        run_compare(oa, ob, build_workload(wl), load, a.mode, a.rounds, pcts, goodput, (a.a_label, a.b_label))
    )
    res.update(_meta(a, wl))
    _echo(compare_table(res))
    out.mkdir(parents=True, exist_ok=True)
    report.write_json(out / "compare.json", res)
    for label, recs in records.items():
        report.write_records(out / f"requests-{label}.jsonl", recs)
    (out / "compare.html").write_text(report.render_compare_html(res, records))
    _echo(f"results: {out / 'compare.json'}")
    return res


def _levels(spec: str, flag: str) -> list[float]:
    try:
        levels = sorted({float(x) for x in spec.split(",") if x.strip()})
    except ValueError as e:
        raise SystemExit(f"{flag} needs numbers, got {spec!r}") from e
    if not levels or levels[0] <= 0:
        raise SystemExit(f"{flag} needs levels > 0")
    return levels


def cmd_compare(a: argparse.Namespace) -> int:
    """``compare``: A vs B interleaved; with a level list, once per level, plus capacity at the SLOs."""
    from loadtest import report
    from loadtest.capacity import capacity_table, summarize_capacity

    wl, load, out = workload_config(a), load_config(a), _outdir(a, "compare")
    if not (a.concurrency_list or a.rate_list):
        _compare_once(a, wl, load, out)
        return 0
    by_rate = bool(a.rate_list)
    levels = _levels(a.rate_list, "--rate-list") if by_rate else _levels(a.concurrency_list, "--concurrency-list")
    if not by_rate and any(x != int(x) for x in levels):
        raise SystemExit("--concurrency-list needs whole stream counts")
    points: dict[str, list[dict[str, Any]]] = {a.a_label: [], a.b_label: []}
    for level in levels:
        _echo(f"--- {level:g} {'req/s' if by_rate else 'streams'}")
        level_wl = wl if a.prompts_per_level is None else wl.model_copy(
            update={"num_prompts": max(1, math.ceil(a.prompts_per_level * level))})
        level_load = load.model_copy(update={"request_rate": level} if by_rate else {"max_concurrency": int(level)})
        res = _compare_once(a, level_wl, level_load, out / f"{'r' if by_rate else 'c'}{level:g}")
        for label in points:
            if a.capacity_metric not in res["endpoints"][label]:
                raise SystemExit(f"--capacity-metric {a.capacity_metric!r} is not a result key "
                                 f"(e.g. p99_ttft_ms, p90_itl_ms, median_e2el_ms; see --percentiles)")
            points[label].append(res["endpoints"][label])
    doc = summarize_capacity(levels, points, a.capacity_metric, a.capacity_slo, "req/s" if by_rate else "streams")
    doc.update(_meta(a, wl))
    report.write_json(out / "capacity.json", doc)
    (out / "capacity.md").write_text(capacity_table(doc))
    (out / "capacity.html").write_text(report.render_capacity_html(doc))
    _echo(capacity_table(doc) + f"capacity: {out / 'capacity.json'}")
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    """``report``: rebuild report.html from results.json + requests.jsonl."""
    from loadtest import report

    _echo(str(report.rebuild_report(Path(a.dir))))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``qwen-loadtest``."""
    a = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(a, "verbose", False) else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handlers = {"run": cmd_run, "sweep": cmd_sweep, "compare": cmd_compare, "report": cmd_report}
    return handlers[a.command](a)


if __name__ == "__main__":
    sys.exit(main())
