"""Synthetic workloads with exact input lengths: random, shared-prefix and multi-turn."""

from __future__ import annotations

import numpy as np

from loadtest.tokens import exact_text
from loadtest.workloads.base import Conversation, Turn
from loadtest.workloads.config import WorkloadConfig


def random_workload(cfg: WorkloadConfig) -> list[Conversation]:
    """Single-turn prompts of random words, lengths drawn from ``input_len`` / ``output_len``."""
    rng = np.random.default_rng(cfg.seed)
    gen = exact_text(cfg.tokenizer)
    ins = cfg.input_len.sample(cfg.num_prompts, rng)
    outs = cfg.output_len.sample(cfg.num_prompts, rng)
    return [
        Conversation(index=i, turns=[Turn(gen.make(n_in, rng), n_in, n_out)])
        for i, (n_in, n_out) in enumerate(zip(ins, outs, strict=False))
    ]


def shared_prefix_workload(cfg: WorkloadConfig) -> list[Conversation]:
    """``num_prefixes`` shared prefixes of ``prefix_len`` tokens, each request adds a unique suffix.

    The suffix length is drawn from ``input_len``; the exact prompt length is prefix + suffix (or the
    suffix alone when the prefix goes in the system prompt). Requests pick prefixes round-robin after
    a seeded shuffle, so every prefix is used about equally.
    """
    rng = np.random.default_rng(cfg.seed)
    gen = exact_text(cfg.tokenizer)
    prefixes = [gen.make(cfg.prefix_len, rng) for _ in range(cfg.num_prefixes)]
    order = rng.permutation(cfg.num_prompts) % cfg.num_prefixes
    ins = cfg.input_len.sample(cfg.num_prompts, rng)
    outs = cfg.output_len.sample(cfg.num_prompts, rng)
    convs = []
    for i in range(cfg.num_prompts):
        p = int(order[i])
        suffix = gen.make(ins[i], rng)
        if cfg.prefix_as_system:
            turn = Turn(suffix, ins[i], outs[i])
            convs.append(Conversation(index=i, turns=[turn], system=prefixes[p].lstrip(), task=f"prefix-{p}"))
        else:
            turn = Turn(prefixes[p] + suffix, cfg.prefix_len + ins[i], outs[i])
            convs.append(Conversation(index=i, turns=[turn], task=f"prefix-{p}"))
    return convs


def multi_turn_workload(cfg: WorkloadConfig) -> list[Conversation]:
    """Conversations of ``turns`` user messages; each turn is sent with the history so far.

    Each user message has an exact length drawn from ``input_len``; the assistant replies that go in
    the history are the server's real replies, collected while running.
    """
    rng = np.random.default_rng(cfg.seed)
    gen = exact_text(cfg.tokenizer)
    n_turns = cfg.turns.sample(cfg.num_prompts, rng)
    convs = []
    for i, k in enumerate(n_turns):
        k = max(1, k)
        ins = cfg.input_len.sample(k, rng)
        outs = cfg.output_len.sample(k, rng)
        convs.append(
            Conversation(
                index=i, turns=[Turn(gen.make(n, rng), n, o) for n, o in zip(ins, outs, strict=False)]
            )
        )
    return convs
