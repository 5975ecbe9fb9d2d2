"""The real Qwen tokenizer and a generator of text with an exact token count.

Text is built from a pool of lowercase words that are each exactly one token when preceded by a space
(``" apple"``). Qwen's byte-level BPE pre-tokenizer splits on those spaces, so a string of ``n`` such
words always encodes to exactly ``n`` tokens, and two such strings concatenated add their counts. Every
generated string is still verified against the tokenizer.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

_WORD_RE = re.compile(r"^[a-z]{3,9}$")


def tokenizer_dir() -> str:
    """Return the directory of the Qwen tokenizer files (the one location helper: ``serve.demokit``)."""
    from serve.demokit import tokenizer_dir as qwen_tokenizer_dir

    return str(qwen_tokenizer_dir())


@functools.lru_cache(maxsize=4)
def load_tokenizer(path: str | None = None) -> Any:
    """Load (once) a Hugging Face tokenizer; the packaged Qwen tokenizer by default.

    Args:
        path: A tokenizer directory or hub-style id available locally; None for the Qwen one.

    Returns:
        A ``transformers`` tokenizer.
    """
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path or tokenizer_dir(), local_files_only=True)


def count_tokens(text: str, tokenizer: Any | None = None) -> int:
    """Count the tokens of ``text`` (no special tokens added)."""
    tok = tokenizer or load_tokenizer()
    return len(tok.encode(text, add_special_tokens=False))


class ExactText:
    """Generates random text of an exact token length with the given tokenizer.

    Args:
        tokenizer: A tokenizer; the packaged Qwen tokenizer when None.
        max_words: How many single-token words to keep in the pool.
    """

    def __init__(self, tokenizer: Any | None = None, max_words: int = 4000) -> None:
        self.tokenizer = tokenizer or load_tokenizer()
        self.words = self._single_token_words(max_words)
        if len(self.words) < 100:
            raise RuntimeError("tokenizer vocabulary yields too few single-token words")

    def _single_token_words(self, max_words: int) -> list[str]:
        vocab = self.tokenizer.get_vocab()
        # "Ġ" is the byte-level BPE marker of a leading space.
        cands = sorted(t[1:] for t in vocab if t.startswith("Ġ") and _WORD_RE.match(t[1:]))
        # Spread the pick over the alphabet, then verify all candidates in one batched call.
        step = max(1, len(cands) // (2 * max_words))
        cands = cands[::step]
        ids = self.tokenizer([" " + w for w in cands], add_special_tokens=False)["input_ids"]
        return [w for w, i in zip(cands, ids, strict=False) if len(i) == 1][:max_words]

    def make(self, n_tokens: int, rng: np.random.Generator) -> str:
        """Return a string of exactly ``n_tokens`` tokens (each word with a leading space).

        Args:
            n_tokens: Target length, >= 0.
            rng: Random generator (seeded by the caller for reproducibility).
        """
        if n_tokens <= 0:
            return ""
        idx = rng.integers(0, len(self.words), size=n_tokens)
        return "".join(" " + self.words[i] for i in idx)

    def pad(self, text: str, n_tokens: int, rng: np.random.Generator) -> str:
        """Append filler words so that ``text`` becomes exactly ``n_tokens`` tokens.

        Truncates (by tokens) when the text is already longer than ``n_tokens``.
        """
        have = count_tokens(text, self.tokenizer)
        if have > n_tokens:
            ids = self.tokenizer.encode(text, add_special_tokens=False)[:n_tokens]
            text = self.tokenizer.decode(ids)
            have = count_tokens(text, self.tokenizer)
            # Decoding a cut can merge differently; drop more tokens until it fits.
            while have > n_tokens and ids:
                ids = ids[:-1]
                text = self.tokenizer.decode(ids)
                have = count_tokens(text, self.tokenizer)
        out = text + self.make(n_tokens - have, rng)
        return out


@functools.lru_cache(maxsize=2)
def exact_text(path: str | None = None) -> ExactText:
    """Return a cached :class:`ExactText` for the tokenizer at ``path`` (Qwen by default)."""
    return ExactText(load_tokenizer(path))
