"""A task mix that exercises the task-aware router: code, math, general, reasoning and vision prompts.

Each prompt starts with a task-typical instruction and is padded with filler words to an exact token
length drawn from ``input_len``. Vision prompts carry a small generated PNG as a data URL.
"""

from __future__ import annotations

import base64
import io

import numpy as np

from loadtest.tokens import exact_text
from loadtest.workloads.base import TASKS, Conversation, Turn
from loadtest.workloads.config import WorkloadConfig

_TEMPLATES: dict[str, tuple[str, ...]] = {
    "code": (
        "Write a Python function `merge_intervals(xs)` that merges overlapping intervals. "
        "Include type hints and unit tests.",
        "Fix the bug in this code:\n```python\ndef mean(xs):\n    return sum(xs) / len(xs) + 1\n```",
        "Implement a thread-safe LRU cache class in Python with get and put methods.",
    ),
    "math": (
        "Solve for x: {a}x + {b} = {c}. Show each step of the algebra.",
        "Compute the integral of x^{a} from 0 to {b} and simplify the result.",
        "What is {a} * {b} + {c}? Prove that the result is even or odd.",
    ),
    "general": (
        "Write a short friendly email inviting the team to a picnic on Friday.",
        "Summarize the history of the printing press in three sentences.",
        "Give me five tips for a good night's sleep.",
    ),
    "reasoning": (
        "Think step by step. A farmer has {a} sheep; all but {b} run away. How many are left? "
        "Explain your reasoning carefully before answering.",
        "Reason carefully: if every blip is a blop and some blops are blups, must some blips be blups?",
        "Plan a logical argument, weighing both sides, on whether {a} small tests beat one large test.",
    ),
    "vision": (
        "Describe this image in detail.",
        "What colors appear in this picture?",
        "Is there any text in this image? Answer briefly.",
    ),
}


def png_data_url(size: int, rng: np.random.Generator) -> str:
    """Return a ``data:image/png;base64,...`` URL of a random ``size`` x ``size`` RGB image."""
    from PIL import Image

    pixels = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def normalised_weights(weights: dict[str, float]) -> dict[str, float]:
    """Validate and normalise task weights (unknown tasks are rejected)."""
    unknown = set(weights) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown tasks {sorted(unknown)}; known: {', '.join(TASKS)}")
    total = sum(max(0.0, w) for w in weights.values())
    if total <= 0:
        raise ValueError("task weights must have a positive sum")
    return {t: max(0.0, w) / total for t, w in weights.items() if w > 0}


def task_mix_workload(cfg: WorkloadConfig) -> list[Conversation]:
    """Build single-turn prompts whose tasks follow ``task_weights``."""
    rng = np.random.default_rng(cfg.seed)
    gen = exact_text(cfg.tokenizer)
    weights = normalised_weights(cfg.task_weights)
    names = list(weights)
    tasks = rng.choice(names, size=cfg.num_prompts, p=[weights[t] for t in names])
    ins = cfg.input_len.sample(cfg.num_prompts, rng)
    outs = cfg.output_len.sample(cfg.num_prompts, rng)
    convs = []
    for i, task in enumerate(tasks):
        task = str(task)
        options = _TEMPLATES[task]
        template = options[int(rng.integers(len(options)))]
        a, b, c = (int(x) for x in rng.integers(2, 99, size=3))
        text = gen.pad(template.format(a=a, b=b, c=c), ins[i], rng)
        image = png_data_url(cfg.image_size, rng) if task == "vision" else None
        convs.append(Conversation(index=i, turns=[Turn(text, ins[i], outs[i], image_url=image)], task=task))
    return convs
