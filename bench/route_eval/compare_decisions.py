"""Check that this checkout's classifier decides exactly as another git revision's (speed work must not
change a decision).

Classifies every prompt of the route-eval sets (``dataset``, ``holdout`` .. ``holdout4``) and the varied
prompts of the router-only benchmark with both routers' classifiers (the bench fleet's tasks, and the default
tasks), in two processes (this checkout, and a temporary ``git worktree`` of ``--base``), and compares task,
reason, language, every signal (name, task, weight, detail, scope) and the scores. Prints the differences
(ids only, never prompt text) and exits 1 when there is any.

Run: ``.venv/bin/python bench/route_eval/compare_decisions.py --base efb136e``.
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
SETS = ("dataset", "holdout", "holdout2", "holdout3", "holdout4")

_DUMP = r"""
import json, sys
from serve.router.classify import Classifier
root = sys.argv[1]
configs = {"bench": (("general", "code", "math", "reasoning"), "general"),
           "default": (("code", "math", "vision", "reasoning", "general"), "general")}
out = {}
for cfg, (tasks, default) in configs.items():
    clf = Classifier(tasks=tasks, default_task=default)
    for name in __SETS__:
        for line in open(f"{root}/bench/route_eval/{name}.jsonl", encoding="utf-8"):
            if not line.strip():
                continue
            item = json.loads(line)
            body = {"model": "auto", "prompt": item["prompt"]} if "prompt" in item else {
                "model": "auto", "messages": item["messages"]}
            c = clf.classify(body)
            out[f"{cfg}/{name}/{item['id']}"] = {
                "task": c.task, "reason": c.reason, "language": c.language,
                "signals": [[s.name, s.task, s.weight, s.detail, s.scope] for s in c.signals],
                "scores": c.scores}
json.dump(out, sys.stdout)
""".replace("__SETS__", repr(SETS))


def dump(tree: Path) -> dict[str, dict[str, object]]:
    """Every decision of the classifier in ``tree`` (run in its own process, that tree first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", _DUMP, str(ROOT)], cwd=tree, env=env, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out)  # type: ignore[no-any-return]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default="efb136e", help="git revision to compare with")
    args = ap.parse_args()
    where = Path(tempfile.mkdtemp(prefix="clf-base-")) / "tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), args.base], check=True,
                   capture_output=True)
    try:
        base = dump(where)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(where)], capture_output=True)
    mine = dump(ROOT)
    diffs = {k: sorted(f for f in base[k] if base[k][f] != mine.get(k, {}).get(f)) for k in base}
    diffs = {k: v for k, v in diffs.items() if v}
    missing = sorted(set(base) ^ set(mine))
    for k, fields in sorted(diffs.items()):
        print(f"DIFF {k}: {', '.join(fields)} (base task {base[k]['task']}, now {mine.get(k, {}).get('task')})")
    print(f"{len(base)} decisions compared with {args.base}: {len(diffs)} differ, {len(missing)} missing")
    return 1 if diffs or missing else 0


if __name__ == "__main__":
    sys.exit(main())
