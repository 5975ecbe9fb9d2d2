"""A small learned component: multinomial logistic regression over hashed text features and the rule scores.

No model is called: inference is numpy only, a sparse dot product over at most a few thousand hashed features.

Features (all computed on the last user turn's ``focus_lowered`` window, cut to its first :data:`HEAD_CHARS` and
last :data:`TAIL_CHARS` characters, so the cost is bounded):

* character n-grams, n = 1..4, after collapsing whitespace and mapping digits to ``0`` (works for any script,
  CJK included), hashed into :data:`BUCKETS` buckets with a fixed 64-bit multiplicative hash (deterministic,
  unlike Python's ``hash``);
* word unigrams and bigrams of the first and last :data:`WORD_WINDOW` words (``zlib.crc32``, deterministic);
* dense features from the rule families: each task's score in the last turn, in earlier turns and in the
  system prompt (clipped and scaled to 0..1), plus a few shape features (fences, multi-turn, length).

The sparse features are binary (each distinct bucket once) and scaled by ``1/sqrt(count)`` (their L2 norm). Weights ship as
``linear_weights.npz`` next to this module (written by ``bench/route_eval/train.py``).
"""

from __future__ import annotations

import logging
import math
import re
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .extract import RequestView
from .types import Signal

logger = logging.getLogger(__name__)

_NGRAM_IDS: Callable[[str, list[int], int], bytes] | None
try:  # the optional C extension (setup.py); the numpy computation below gives the same ids without it
    from ._native import ngram_ids as _NGRAM_IDS
except ImportError:  # pragma: no cover - depends on the install
    _NGRAM_IDS = None

WEIGHTS_PATH = Path(__file__).with_name("linear_weights.npz")
BUCKETS_BITS = 17
BUCKETS = 1 << BUCKETS_BITS
NGRAM_MIN, NGRAM_MAX = 1, 4
WORD_WINDOW = 48
HEAD_CHARS = 384
TAIL_CHARS = 256
RULE_TASKS = ("code", "math", "reasoning", "general")
SCORE_CLIP = 3.0
_PRIME = np.uint64(1_000_003)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_SHIFT = np.uint64(64 - BUCKETS_BITS)
_SALTS = {n: np.uint64((0xA24BAED4963EE407 * n) & 0xFFFFFFFFFFFFFFFF) for n in range(NGRAM_MIN, NGRAM_MAX + 1)}
_WORD_FLAG = np.uint64(1 << 40)
_BIGRAM = np.uint64(0x5BD1E995)
_DIGITS = str.maketrans("0123456789", "0000000000")
# The same mapping as ``_DIGITS`` (ASCII digits only), several times faster than ``str.translate``.
_NONZERO_RE = re.compile("[1-9]")
_F32 = struct.Struct("<f")
_CRC32 = zlib.crc32
_MAX = np.maximum.reduce
_SUM = np.add.reduce
_EXP = np.exp
# Latin-letter runs apart from other scripts ("gitで" -> git, で), as in :mod:`.features`.
_WORD_RE = re.compile(r"[a-z\u00c0-\u024f]+|[^\W_a-z\u00c0-\u024f]+")
_SCOPE_ROW = {"last": 0, "ctx": 1, "sys": 2}
DENSE_NAMES = tuple(f"{scope}:{t}" for scope in ("last", "ctx", "sys") for t in RULE_TASKS) + (
    "fences", "multi_turn", "system_prompt", "short", "long", "bias")


def text_features(text: str) -> np.ndarray:
    """Distinct hashed bucket ids of ``text``'s character n-grams and word uni/bigrams.

    With the optional C extension (:mod:`._native`, built at install when a compiler is there) the n-gram hashes,
    the word flags and the distinct sorted ids come from one pass over the text; without it, every hash is
    written into one preallocated numpy buffer (no per-n-gram arrays, no concatenation): a fixed, small number
    of numpy calls whatever the text. Both give the same ids (:func:`text_features_numpy`).

    Args:
        text: Lower-cased text (the caller bounds its length).

    Returns:
        Sorted ``int64`` array of distinct bucket ids in ``[0, BUCKETS)``; never empty.
    """
    norm, hashed, n_words = _words(text)
    if _NGRAM_IDS is not None:
        return np.frombuffer(_NGRAM_IDS(norm, hashed, n_words), dtype=np.int64)
    return _ids_numpy(norm, hashed, n_words)


def text_features_numpy(text: str) -> np.ndarray:
    """:func:`text_features` without the C extension (the reference it is tested against)."""
    return _ids_numpy(*_words(text))


def _words(text: str) -> tuple[str, list[int], int]:
    """The normalised text, the crc32 of its words then of its bigrams, and the number of words."""
    if len(text) > HEAD_CHARS + TAIL_CHARS:
        text = text[:HEAD_CHARS] + " " + text[-TAIL_CHARS:]
    norm = " " + " ".join(_NONZERO_RE.sub("0", text).split()) + " "
    words = _WORD_RE.findall(norm)
    if len(words) > 2 * WORD_WINDOW:
        words = words[:WORD_WINDOW] + words[-WORD_WINDOW:]
    hashed = list(map(_CRC32, map(str.encode, words)))
    # crc32 of "a b" continues crc32 of "a" with " b" (zlib's running value); 0x5BD1E995 marks a bigram.
    hashed += map(_CRC32, map(str.encode, map(" ".__add__, words[1:])), hashed[:])
    return norm, hashed, len(words)


def _ids_numpy(norm: str, hashed: list[int], n_words: int) -> np.ndarray:
    n_bigrams = len(hashed) - n_words
    codes = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32)
    hashed = [*hashed, 0x2545F491]  # constant token: keeps empty texts featurisable
    n_chars = len(codes)  # >= 2: norm starts and ends with a space
    total = sum(max(0, n_chars - n + 1) for n in range(NGRAM_MIN, NGRAM_MAX + 1))
    buf = np.empty(total + len(hashed), dtype=np.uint64)
    # n-gram hashes (NGRAM_MIN is 1): h_1 = codes, h_n[i] = h_{n-1}[i] * PRIME + codes[i + n - 1]; each h_n
    # is salted once h_{n+1} has been computed from it.
    prev = buf[:n_chars]
    prev[:] = codes
    at, last = n_chars, NGRAM_MIN
    for n in range(NGRAM_MIN + 1, NGRAM_MAX + 1):
        count = n_chars - n + 1
        if count <= 0:
            break
        cur = buf[at:at + count]
        np.multiply(prev[:count], _PRIME, out=cur)
        cur += codes[n - 1:]
        prev ^= _SALTS[n - 1]
        prev, at, last = cur, at + count, n
    prev ^= _SALTS[last]
    words_part = buf[at:]
    words_part[:] = hashed
    if n_bigrams:
        words_part[n_words:n_words + n_bigrams] ^= _BIGRAM
    words_part |= _WORD_FLAG
    buf *= _MIX
    buf >>= _SHIFT
    ids = buf.view(np.int64)
    ids.sort()
    # Distinct ids (sort + neighbour compare: several times faster than np.unique's hash path here).
    keep = np.empty(len(ids), dtype=bool)
    keep[0] = True
    np.not_equal(ids[1:], ids[:-1], out=keep[1:])
    return ids[keep]


def dense_features(view: RequestView, signals: Sequence[Signal]) -> np.ndarray:
    """Rule scores per task and scope (clipped to 0..1) plus shape features, in :data:`DENSE_NAMES` order.

    The scores are summed in float32, signal by signal (as ``+=`` on a float32 array would): each sum is
    rounded to float32 from the exact double sum (double rounding is innocuous for float32 operands).
    """
    cells: dict[int, float] = {}
    f32 = _f32
    for s in signals:
        col = _TASK_COL.get(s.task)
        if col is None or s.name in ("modality", "language"):
            continue
        at = _SCOPE_ROW.get(s.scope, 0) * _N_TASKS + col
        w = f32(s.weight)
        cells[at] = f32(cells[at] + w) if at in cells else w
    values = [0.0] * len(DENSE_NAMES)
    for at, v in cells.items():
        values[at] = f32(min(max(v, 0.0), SCORE_CLIP) / SCORE_CLIP)
    n = len(view.last.text)
    values[_N_SCORES:] = (float(bool(view.last.fences)), float(bool(view.context.text)), float(bool(view.system.text)),
                          float(n < 60), float(n > 600), 1.0)
    return np.array(values, dtype=np.float32)


def _f32(x: float) -> float:
    """``x`` rounded to float32 (returned as a Python float)."""
    return _F32.unpack(_F32.pack(x))[0]


_TASK_COL = {t: i for i, t in enumerate(RULE_TASKS)}
_N_TASKS = len(RULE_TASKS)
_N_SCORES = 3 * _N_TASKS


def dense_features_numpy(view: RequestView, signals: Sequence[Signal]) -> np.ndarray:
    """:func:`dense_features` with float32 arrays (the reference it is tested against)."""
    scores = np.zeros((3, len(RULE_TASKS)), dtype=np.float32)
    for s in signals:
        if s.task not in RULE_TASKS or s.name in ("modality", "language"):
            continue
        scores[_SCOPE_ROW.get(s.scope, 0), RULE_TASKS.index(s.task)] += s.weight
    np.clip(scores, 0.0, SCORE_CLIP, out=scores)
    n = len(view.last.text)
    shape = [float(bool(view.last.fences)), float(bool(view.context.text)), float(bool(view.system.text)),
             float(n < 60), float(n > 600), 1.0]
    return np.concatenate([scores.ravel() / SCORE_CLIP, np.asarray(shape, dtype=np.float32)])


@dataclass(frozen=True)
class LinearModel:
    """Trained weights: ``sparse`` [BUCKETS, K], ``dense`` [len(DENSE_NAMES), K], ``classes`` (task names)."""

    sparse: np.ndarray
    dense: np.ndarray
    classes: tuple[str, ...]

    @classmethod
    def load(cls, path: Path = WEIGHTS_PATH) -> LinearModel:
        """Load weights saved by :meth:`save` (rows stored sparsely, float16)."""
        with np.load(path, allow_pickle=False) as z:
            classes = tuple(str(c) for c in z["classes"])
            if tuple(str(d) for d in z["dense_names"]) != DENSE_NAMES or int(z["buckets"]) != BUCKETS:
                raise ValueError(f"{path}: weights do not match this feature layout; retrain")
            sparse = np.zeros((BUCKETS, len(classes)), dtype=np.float32)
            sparse[z["rows"]] = z["values"].astype(np.float32)
            return cls(sparse, z["dense"].astype(np.float32), classes)

    def save(self, path: Path = WEIGHTS_PATH) -> None:
        """Save the non-zero sparse rows as float16 (small file), dense weights as float32."""
        rows = np.flatnonzero(np.abs(self.sparse).max(axis=1) > 1e-4).astype(np.int32)
        np.savez_compressed(path, rows=rows, values=self.sparse[rows].astype(np.float16),
                            dense=self.dense.astype(np.float32), classes=np.asarray(self.classes),
                            dense_names=np.asarray(DENSE_NAMES), buckets=np.int64(BUCKETS))

    def probabilities(self, ids: np.ndarray, dense: np.ndarray) -> np.ndarray:
        """Class probabilities (softmax) for one example, in :attr:`classes` order."""
        # A matrix-vector product sums the gathered rows far faster than ``.sum(axis=0)`` (strided reduction).
        # ``np.take`` gathers the rows several times faster than fancy indexing (same rows, same sum).
        # The ufuncs and methods are called directly: numpy's Python wrappers (np.full, np.take, .max, .sum)
        # cost more than the work on arrays this small; the arithmetic is the same.
        n = len(ids)
        scale = np.empty(n, dtype=np.float32)
        scale.fill(1.0 / math.sqrt(n))
        z = scale @ self.sparse.take(ids, axis=0) + dense @ self.dense
        z = _EXP(z - _MAX(z))
        return z / _SUM(z)


def load_default() -> LinearModel | None:
    """The shipped model, or ``None`` (logged) when the weights file is missing or does not match."""
    try:
        return LinearModel.load()
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("linear classifier weights not loaded (%s); rules only", exc)
        return None
