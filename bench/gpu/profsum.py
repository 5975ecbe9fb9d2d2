"""Summarise py-spy ``--format raw`` profiles (``*.folded``): where each serving process spends its samples.

``profsum.py DIR [DIR ...] > OUT.md``: for each ``ROLE-PID.folded`` (or ``.folded.gz``) in each DIR, the samples (py-spy records
only non-idle stacks: a sample is a thread found running Python at 40 Hz), the share of each category below
(a sample counts in the first category whose marker appears in its stack), and the top self frames.
"""

from __future__ import annotations

import collections
import gzip
import sys
from pathlib import Path

#: (category, markers): the first category whose marker appears anywhere in a stack takes the sample.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("engine step (scheduler, model runner, executor queue)", ("scheduler.py", "gpu_model_runner", "v1/engine/core.py",
                                                                "shm_broadcast", "execute_model", "gpu_worker")),
    ("Ray metrics (log_engine_metrics)", ("ray/util/metrics.py", "ray_wrappers.py")),
    ("Ray core worker / Serve replica machinery", ("ray/_private/", "ray/serve/_private/replica.py:main_loop",
                                                   "ray/serve/_private/metrics_utils", "ray/_raylet",
                                                   "ray/serve/_private/replica.py:_send", "grpc")),
    ("vLLM output handling (detokenise, output processor, stats)", ("output_processor.py", "detokenizer.py",
                                                                    "v1/metrics/", "async_llm.py")),
    ("vLLM request intake (chat template, tokenise, validation)", ("chat_utils.py", "tokenization_utils",
                                                                   "_preprocess", "input_processor",
                                                                   "renderer", "hf.py")),
    ("SSE encode + HTTP send (pydantic, uvicorn/h11, starlette)", ("model_dump_json", "h11", "uvicorn",
                                                                    "starlette", "chat_completion_stream_generator",
                                                                    "protocol.py")),
    ("router relay (aiohttp client, FastAPI)", ("aiohttp", "serve/router")),
]


def summarize(path: Path, top: int = 8) -> str:
    """One process's summary as markdown lines."""
    total = 0
    cats: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    for line in raw.decode(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        total += count
        frames = stack.split(";")
        own[frames[-1].split(" (")[0] + " (" + frames[-1].rsplit("/", 1)[-1]] += count
        for name, markers in CATEGORIES:
            if any(m in stack for m in markers):
                cats[name] += count
                break
        else:
            cats["other"] += count
    if not total:
        return f"### {path.name}\n\nno samples\n"
    out = [f"### {path.name.split('.')[0]}: {total} samples ({total / 40:.0f} s of a thread running Python at 40 Hz)", "",
           "| category | share |", "|---|---|"]
    out += [f"| {k} | {v / total:.1%} |" for k, v in cats.most_common()]
    out += ["", "Top self frames: " + "; ".join(f"{k} {v / total:.1%}" for k, v in own.most_common(top)), ""]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    """CLI: ``profsum.py DIR [DIR ...]``."""
    if not argv:
        sys.stderr.write(__doc__ or "")
        return 2
    for d in argv:
        sys.stdout.write(f"## {Path(d).name}\n\n")
        for f in sorted([*Path(d).glob("*.folded"), *Path(d).glob("*.folded.gz")]):
            sys.stdout.write(summarize(f) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
