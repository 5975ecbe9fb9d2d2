"""Classification speed, this checkout against another git revision, in alternating processes.

Times ``Classifier.classify`` over the router-only benchmark's varied prompts (the text-only conversations of
``holdout4.jsonl``) with the bench fleet's tasks: best of ``--repeats`` passes per process, ``--rounds``
processes per side in ABAB order (a noisy shared machine affects both alike), then p50 and p99 of single
decisions (3 passes). The clock is the thread's CPU time by default (``--clock wall`` for perf_counter): time
spent descheduled by other work on a shared machine does not count. Prints microseconds per decision and the
speed-up. Decisions are checked separately (``compare_decisions.py``).

Run: ``.venv/bin/python bench/route_eval/classify_speed.py --base efb136e``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_TIME = r"""
import json, sys, time
from serve.router.classify import Classifier
from serve.router.facts import facts_of
convs = []
for line in open(sys.argv[1], encoding="utf-8"):
    msgs = json.loads(line).get("messages") if line.strip() else None
    if msgs and all(isinstance(m.get("content"), str) for m in msgs):
        convs.append(msgs)
facts = [facts_of({"model": "auto", "messages": c}) for c in convs[:300]]
clf = Classifier(tasks=("general", "code", "math", "reasoning"), default_task="general")
for f in facts:
    clf.classify(f)
clock = time.thread_time if sys.argv[3] == "cpu" else time.perf_counter
best = min(
    (lambda t0: ([clf.classify(f) for f in facts], clock() - t0)[1])(clock())
    for _ in range(int(sys.argv[2])))
each = []
tick = time.thread_time_ns if sys.argv[3] == "cpu" else time.perf_counter_ns
for _ in range(3):
    for f in facts:
        t0 = tick()
        clf.classify(f)
        each.append(tick() - t0)
each.sort()
print(json.dumps({"mean": best / len(facts) * 1e6, "p50": each[len(each) // 2] / 1e3,
                  "p99": each[int(len(each) * 0.99)] / 1e3}))
"""


def timed(tree: Path, repeats: int, clock: str) -> dict[str, float]:
    """Per-decision microseconds in ``tree``: mean of the best pass, and p50/p99 of single decisions."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", _TIME, str(ROOT / "bench" / "route_eval" / "holdout4.jsonl"),
                          str(repeats), clock], cwd=tree, env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="efb136e")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="cpu: the thread's CPU time (steadier on a shared machine); wall: perf_counter")
    args = ap.parse_args()
    where = Path(tempfile.mkdtemp(prefix="clf-speed-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), args.base], check=True,
                   capture_output=True)
    times: dict[str, list[dict[str, float]]] = {"base": [], "branch": []}
    try:
        for i in range(args.rounds):
            order = (("base", where), ("branch", ROOT)) if i % 2 == 0 else (("branch", ROOT), ("base", where))
            for name, tree in order:
                times[name].append(timed(tree, args.repeats, args.clock))
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], capture_output=True)
    best = {k: {m: min(r[m] for r in v) for m in ("mean", "p50", "p99")} for k, v in times.items()}
    b, n = best["base"], best["branch"]
    clock = "CPU time of the thread" if args.clock == "cpu" else "wall time"
    print(f"classify, us per decision ({clock}; best of {args.rounds} processes, 300 prompts): "
          f"base {args.base} mean {b['mean']:.1f} p50 {b['p50']:.1f} p99 {b['p99']:.1f}; "
          f"branch mean {n['mean']:.1f} p50 {n['p50']:.1f} p99 {n['p99']:.1f}: {b['mean'] / n['mean']:.2f}x")
    print(json.dumps({k: [{m: round(x, 1) for m, x in r.items()} for r in v] for k, v in times.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
