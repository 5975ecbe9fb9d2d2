"""Classification speed, this checkout against another git revision, in alternating processes.

Times ``Classifier.classify`` over the router-only benchmark's varied prompts (the text-only conversations of
``holdout4.jsonl``) with the bench fleet's tasks: best of ``--repeats`` passes per process, ``--rounds``
processes per side in ABAB order (a noisy shared machine affects both alike). Prints microseconds per request
and the speed-up. Decisions are checked separately (``compare_decisions.py``).

Run: ``.venv/bin/python bench/route_eval/classify_speed.py --base efb136e``.
"""

from __future__ import annotations

import argparse
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
best = min(
    (lambda t0: ([clf.classify(f) for f in facts], time.perf_counter() - t0)[1])(time.perf_counter())
    for _ in range(int(sys.argv[2])))
print(best / len(facts) * 1e6)
"""


def timed(tree: Path, repeats: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", _TIME, str(ROOT / "bench" / "route_eval" / "holdout4.jsonl"),
                          str(repeats)], cwd=tree, env=env, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="efb136e")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    where = Path(tempfile.mkdtemp(prefix="clf-speed-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), args.base], check=True,
                   capture_output=True)
    times: dict[str, list[float]] = {"base": [], "branch": []}
    try:
        for i in range(args.rounds):
            order = (("base", where), ("branch", ROOT)) if i % 2 == 0 else (("branch", ROOT), ("base", where))
            for name, tree in order:
                times[name].append(timed(tree, args.repeats))
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], capture_output=True)
    b, n = min(times["base"]), min(times["branch"])
    print(f"classify, us per request (best of {args.rounds} processes x {args.repeats} passes, 300 prompts): "
          f"base {args.base} {b:.1f}, branch {n:.1f}: {b / n:.2f}x")
    print({k: [round(x, 1) for x in v] for k, v in times.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
