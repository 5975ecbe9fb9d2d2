"""Result assembly and output: results JSON, per-request JSONL, console table, HTML report."""

from __future__ import annotations

import base64
import html
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from loadtest import plots
from loadtest.client import RequestRecord
from loadtest.metrics import breakdown, compute_metrics, pword

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
REQUESTS_FILE = "requests.jsonl"
HTML_FILE = "report.html"


def summarize(
    records: Sequence[RequestRecord],
    duration_s: float,
    percentiles: Sequence[float],
    goodput: dict[str, float] | None,
    meta: dict[str, Any],
) -> dict[str, Any]:
    """The full result: run metadata, vLLM-named metrics, breakdowns and router agreement."""
    out: dict[str, Any] = dict(meta)
    out.update(compute_metrics(records, duration_s, percentiles, goodput))
    out["percentiles"] = list(percentiles)
    out["goodput_config"] = goodput or {}
    out["by_task"] = breakdown(records, "task", duration_s, percentiles, goodput)
    out["by_routed_task"] = breakdown(records, "routed_task", duration_s, percentiles, goodput)
    out["by_routed_model"] = breakdown(records, "routed_model", duration_s, percentiles, goodput)
    pairs = [(r.task, r.routed_task) for r in records if r.task and r.routed_task]
    out["routed_task_agreement"] = sum(a == b for a, b in pairs) / len(pairs) if pairs else None
    return out


def console_table(res: dict[str, Any], title: str = "Benchmark Result") -> str:
    """A ``vllm bench serve``-style table."""
    lines = ["{s:{c}^{n}}".format(s=f" {title} ", n=60, c="=")]

    def row(name: str, value: Any, fmt: str = "{:<12.2f}") -> None:
        lines.append(f"{name:<46} " + (fmt.format(value) if isinstance(value, (int, float)) else str(value)))

    row("Successful requests:", res["completed"], "{:<12}")
    row("Failed requests:", res["failed"], "{:<12}")
    row("Maximum request concurrency:", res.get("max_concurrency") or "-", "{:<12}")
    row("Request rate / arrivals:", f"{res.get('request_rate')} ({res.get('arrivals', '-')})")
    row("Benchmark duration (s):", res["duration"])
    row("Total input tokens:", res["total_input_tokens"], "{:<12}")
    row("Total generated tokens:", res["total_output_tokens"], "{:<12}")
    row("Request throughput (req/s):", res["request_throughput"])
    if res.get("request_goodput") is not None:
        row("Request goodput (req/s):", res["request_goodput"])
    row("Output token throughput (tok/s):", res["output_throughput"])
    row("Peak output token throughput (tok/s):", res["max_output_tokens_per_s"])
    row("Total token throughput (tok/s):", res["total_token_throughput"])
    for key, name in (
        ("ttft", "TTFT"),
        ("tpot", "TPOT (excl. 1st)"),
        ("itl", "ITL"),
        ("e2el", "E2EL"),
        ("client_queue_time", "Client queue"),
    ):
        lines.append("{s:{c}^{n}}".format(s=f" {name} (ms) ", n=60, c="-"))
        row(f"Mean {name}:", res[f"mean_{key}_ms"])
        row(f"Median {name}:", res[f"median_{key}_ms"])
        for p in res.get("percentiles", []):
            if p != 50:  # already shown as the median
                row(f"P{pword(p)} {name}:", res[f"p{pword(p)}_{key}_ms"])
    lines.append("-" * 60)
    row("Errors by kind:", json.dumps(res["errors"]) if res["errors"] else "none")
    row("Failed checks:", json.dumps(res["checks"]) if res["checks"] else "none")
    row(
        "Client CPU mean / max (%):",
        f"{res.get('client_cpu_percent_mean', 0):.0f} / {res.get('client_cpu_percent_max', 0):.0f}",
    )
    if res.get("client_cpu_percent_mean", 0) > 70:
        lines.append("WARNING: client CPU above 70 %: the client may be the bottleneck")
    lag = res.get(f"p{pword(max(res.get('percentiles') or [99]))}_client_queue_time_ms", 0.0)
    if not res.get("max_concurrency") and lag > 10:
        lines.append(
            f"NOTE: no concurrency cap, so client queue time is send lag ({lag:.0f} ms at the top percentile): "
            "the client host is busy and requests left late (offered load burstier than asked)"
        )
    for key, label in (("by_task", "task"), ("by_routed_model", "routed model")):
        groups = res.get(key) or {}
        if len(groups) > 1 or (groups and "-" not in groups):
            lines.append("{s:{c}^{n}}".format(s=f" per {label} ", n=60, c="-"))
            lines.append(
                f"{'':<20}{'ok':>6}{'fail':>6}{'req/s':>9}{'ttft p50':>10}{'itl p50':>9}{'e2el p50':>10}"
            )
            for name, m in groups.items():
                lines.append(
                    f"{name[:19]:<20}{m['completed']:>6}{m['failed']:>6}{m['request_throughput']:>9.2f}"
                    f"{m['median_ttft_ms']:>10.1f}{m['median_itl_ms']:>9.1f}{m['median_e2el_ms']:>10.1f}"
                )
    lines.append("=" * 60)
    return "\n".join(lines)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and (math.isinf(obj) or math.isnan(obj)):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def write_json(path: Path, data: Any) -> None:
    """Write strict JSON (inf/nan become strings)."""
    path.write_text(json.dumps(_jsonable(data), indent=2, sort_keys=False))


def write_records(path: Path, records: Sequence[RequestRecord], t0: float | None = None) -> None:
    """Write one JSON line per request; times relative to ``t0`` (the first scheduled arrival)."""
    base = t0 if t0 is not None else min((r.scheduled for r in records), default=0.0)
    with path.open("w") as f:
        for r in records:
            d = r.to_json()
            d["scheduled"] -= base
            d["start"] -= base
            f.write(json.dumps(_jsonable(d)) + "\n")


def read_records(path: Path) -> list[RequestRecord]:
    """Load records written by :func:`write_records`."""
    fields = set(RequestRecord.__dataclass_fields__)
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            out.append(RequestRecord(**{k: v for k, v in d.items() if k in fields}))
    return out


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(png).decode()}"/>'


_CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:1500px}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#eee}img{max-width:100%}"
)


def _metrics_table(cols: dict[str, dict[str, Any]], keys: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    rows = []
    for k in keys:
        cells = "".join(
            f"<td>{v:.2f}</td>" if isinstance(v := m.get(k), float) else f"<td>{html.escape(str(v))}</td>"
            for m in cols.values()
        )
        rows.append(f"<tr><th>{k}</th>{cells}</tr>")
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"


def summary_keys(res: dict[str, Any]) -> list[str]:
    """The scalar metric keys of a result, in display order."""
    keys = [
        "completed",
        "failed",
        "duration",
        "request_throughput",
        "request_goodput",
        "output_throughput",
        "total_token_throughput",
        "max_output_tokens_per_s",
        "max_concurrent_requests",
    ]
    for m in ("ttft", "tpot", "itl", "e2el", "client_queue_time", "e2el_incl_queue"):
        keys += [f"mean_{m}_ms", f"median_{m}_ms"] + [
            f"p{pword(p)}_{m}_ms" for p in res.get("percentiles", [])
        ]
    keys += ["client_cpu_percent_mean", "client_cpu_percent_max"]
    return keys


def render_html(
    res: dict[str, Any], records: Sequence[RequestRecord], title: str = "qwen-loadtest report"
) -> str:
    """A self-contained HTML page: summary, breakdowns, errors, checks and embedded PNG plots."""
    parts = [
        f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_CSS}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>"
    ]
    info = {
        k: res.get(k)
        for k in (
            "base_url",
            "model_id",
            "endpoint_type",
            "dataset",
            "request_rate",
            "arrivals",
            "max_concurrency",
            "stopped_by",
            "goodput_config",
        )
    }
    parts.append(f"<pre>{html.escape(json.dumps(_jsonable(info), indent=1))}</pre>")
    parts.append("<h2>Summary</h2>" + _metrics_table({"all": res}, summary_keys(res)))
    for key in ("by_task", "by_routed_task", "by_routed_model"):
        groups = res.get(key) or {}
        if groups and list(groups) != ["-"]:
            parts.append(f"<h2>{key.replace('_', ' ')}</h2>" + _metrics_table(groups, summary_keys(res)[:13]))
    parts.append(
        f"<h2>Errors and checks</h2><pre>errors: {html.escape(json.dumps(res.get('errors')))}\n"
        f"checks: {html.escape(json.dumps(res.get('checks')))}</pre>"
    )
    if records:
        parts.append("<h2>Latency CDFs</h2>" + _img(plots.latency_cdfs({"": records}), "latency CDFs"))
        parts.append("<h2>Timeline and TTFT vs load</h2>" + _img(plots.timeline(records), "timeline"))
    parts.append("</body></html>")
    return "".join(parts)


def write_run_outputs(outdir: Path, res: dict[str, Any], records: Sequence[RequestRecord]) -> None:
    """Write results.json, requests.jsonl and report.html into ``outdir``."""
    outdir.mkdir(parents=True, exist_ok=True)
    write_json(outdir / RESULTS_FILE, res)
    write_records(outdir / REQUESTS_FILE, records)
    (outdir / HTML_FILE).write_text(render_html(res, records))
    logger.info("wrote %s", outdir)


def rebuild_report(outdir: Path) -> Path:
    """Re-render report.html of a run directory from its results.json and requests.jsonl."""
    res = json.loads((outdir / RESULTS_FILE).read_text())
    recs_path = outdir / REQUESTS_FILE
    records = read_records(recs_path) if recs_path.exists() else []
    target = outdir / HTML_FILE
    target.write_text(render_html(res, records))
    return target


def render_compare_html(res: dict[str, Any], records: Mapping[str, Sequence[RequestRecord]]) -> str:
    """HTML for ``compare``: both endpoints, ratios, deltas and overlaid latency CDFs."""
    la, lb = res["labels"]
    parts = [
        f"<html><head><meta charset='utf-8'><title>compare</title><style>{_CSS}</style></head><body>"
        f"<h1>Compare {html.escape(la)} vs {html.escape(lb)} ({html.escape(res['mode'])})</h1>"
    ]
    eps = res["endpoints"]
    parts.append(_metrics_table(eps, summary_keys({"percentiles": res["percentiles"]})))
    cmp_rows = {"A/B ratio": {**res["ratios"], **res["latency_ratios"]}, "A-B (ms)": res["deltas_ms"]}
    keys = [*res["ratios"], *res["deltas_ms"]]
    parts.append("<h2>Ratios and deltas</h2>" + _metrics_table(cmp_rows, keys))
    parts.append("<h2>Latency CDFs</h2>" + _img(plots.latency_cdfs(dict(records)), "latency CDFs"))
    parts.append("</body></html>")
    return "".join(parts)


def render_sweep_html(points: Sequence[dict[str, Any]], stop_reason: str, mode: str) -> str:
    """HTML for ``sweep``: the step table and the curves."""
    parts = [
        f"<html><head><meta charset='utf-8'><title>sweep</title><style>{_CSS}</style></head><body>"
        f"<h1>Sweep ({html.escape(mode)}), stopped: {html.escape(stop_reason)}</h1>"
    ]
    cols = {f"{mode}={p['load']:.3g}": p for p in points}
    parts.append(_metrics_table(cols, summary_keys(points[0] if points else {})))
    loaded = [p for p in points if p["load"]]
    if loaded:
        parts.append("<h2>Curves</h2>" + _img(plots.sweep_curves(loaded, "load"), "sweep curves"))
    parts.append("</body></html>")
    return "".join(parts)


def render_capacity_html(doc: Mapping[str, Any]) -> str:
    """HTML for ``compare --concurrency-list``: capacity per SLO and the throughput-latency curves."""
    from loadtest.capacity import capacity_table

    return (
        f"<html><head><meta charset='utf-8'><title>capacity</title><style>{_CSS}</style></head><body>"
        f"<h1>Capacity at {html.escape(doc['metric'])} SLO</h1><pre>{html.escape(capacity_table(doc))}</pre>"
        + _img(plots.capacity_curves(doc), "capacity curves")
        + "</body></html>"
    )
