"""One tokenising pass per text scope, shared by every signal family, and set-based keyword lexicons.

:class:`Features` is computed once per :class:`~.extract.Scope` (lazily, on first use) from the scope's
*focus* text (start and end of the prose): the lower-cased tokens, their set (plus naive singulars), the set
of their 4-8 character prefixes (for inflected languages: Lithuanian, Spanish, Russian ...), a normalised
``" tok tok "`` string for phrase look-ups, and the number of numeric tokens. A :class:`Lexicon` then finds
its words by set intersection (C speed), its stems by intersecting with the prefix set, its phrases by
substring search in the normalised string and its CJK keywords by substring search (only when the text has
CJK characters). No family re-scans the text with long keyword regexes.

Every lexicon registers its vocabulary in one shared index when it is built (at import time), and
:attr:`Features.hits` looks the scope up in that index once: one set intersection for the words of every
lexicon together, one for the stems, one for the phrase openings and one pass over the CJK keywords. The
answer is a bit mask with one bit per lexicon, so :meth:`Lexicon.any` is a bit test and :meth:`Lexicon.find`
returns at once for a lexicon with nothing in the text; the families ask about 30 lexicons per scope.

Everything a lexicon returns comes from its own vocabulary, so it is safe to put in a signal's detail.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# c++ / c# / f# / .net first, then letter runs (apostrophes split: python'e -> python e), then numbers. Latin
# letters and other scripts form separate tokens, so a tool name glued to CJK text or a Korean particle is
# found ("gitで" -> git, で; "mysql에서" -> mysql, 에서).
TOKEN_RE = re.compile(r"c\+\+|[cf]#|\.net\b|[a-z\u00c0-\u024f]+|[^\W\d_a-z\u00c0-\u024f]+|\d+(?:[.,]\d+)*")
CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
STEM_LENGTHS = (4, 5, 6, 7, 8)
MAX_TOKENS = 400


@dataclass
class Features:
    """Token-level view of one scope's focus text.

    Attributes:
        text: The focus text (lower-cased prose: head and tail).
        tokens: Tokens in order (at most :data:`MAX_TOKENS`).
        words: Set of the tokens plus the singular of tokens ending in ``s``.
        norm: ``" " + " ".join(tokens) + " "``, for word-bounded phrase look-ups.
        numbers: Count of numeric tokens.
        cjk: Whether the text contains Chinese, Japanese or Korean characters.
        chars: The distinct characters of the text when ``cjk`` (a CJK keyword is searched for only when its
            first character occurs), else empty.
    """

    text: str
    tokens: list[str]
    words: frozenset[str]
    norm: str
    numbers: int
    cjk: bool
    chars: frozenset[str] = frozenset()
    _prefixes: frozenset[str] | None = field(default=None, repr=False)
    _grams: frozenset[str] | None = field(default=None, repr=False)
    _hits: int | None = field(default=None, repr=False)

    @classmethod
    def of(cls, focus_lowered: str) -> Features:
        """Tokenise ``focus_lowered`` once."""
        tokens = TOKEN_RE.findall(focus_lowered)[:MAX_TOKENS]
        uniq = set(tokens)
        words = uniq | {t[:-1] for t in uniq if len(t) > 3 and t[-1] == "s"}
        numbers = sum(1 for t in tokens if t[0].isdigit())
        cjk = not focus_lowered.isascii() and CJK_RE.search(focus_lowered) is not None
        return cls(focus_lowered, tokens, frozenset(words), " " + " ".join(tokens) + " ", numbers, cjk,
                   frozenset(focus_lowered) if cjk else frozenset())

    @property
    def grams(self) -> frozenset[str]:
        """Every token and every pair of adjacent tokens (computed on first use)."""
        if self._grams is None:
            t = self.tokens
            self._grams = frozenset(t).union([f"{a} {b}" for a, b in zip(t, t[1:], strict=False)])
        return self._grams

    @property
    def prefixes(self) -> frozenset[str]:
        """Prefixes of 4-8 characters of every token longer than 4 (computed on first use)."""
        if self._prefixes is None:
            self._prefixes = frozenset(t[:n] for t in set(self.tokens) if len(t) > 4 for n in STEM_LENGTHS
                                       if n <= len(t))
        return self._prefixes

    @property
    def hits(self) -> int:
        """Bit mask of the lexicons (:attr:`Lexicon.bit`) with something in this text (computed on first use).

        A lexicon's bit is set exactly when :meth:`Lexicon.any` would have found one of its words, stems,
        phrases or CJK keywords by asking on its own.
        """
        if self._hits is None:
            index = _INDEX
            mask = 0
            words = index.words
            for w in words.keys() & self.words:
                mask |= words[w]
            stems = index.stems
            for s in stems.keys() & self.prefixes:
                mask |= stems[s]
            norm = self.norm
            for k in index.phrases.keys() & self.grams:
                for bit, p in index.phrases[k]:
                    if not mask & bit and p in norm:
                        mask |= bit
            if self.cjk:
                chars, text = self.chars, self.text
                for bit, kw in index.cjk:
                    if not mask & bit and kw[0] in chars and kw in text:
                        mask |= bit
            self._hits = mask
        return self._hits

    def has_phrase(self, phrase: str) -> bool:
        """Word-bounded phrase test (``phrase`` lower-case, words separated by single spaces)."""
        return " " + " ".join(TOKEN_RE.findall(phrase)) + " " in self.norm


class _LexiconIndex:
    """The vocabulary of every lexicon, keyed for one look-up per scope (see :attr:`Features.hits`)."""

    def __init__(self) -> None:
        self.count = 0
        #: word -> bits of the lexicons holding it; same for stems.
        self.words: dict[str, int] = {}
        self.stems: dict[str, int] = {}
        #: A phrase's first two tokens -> (bit, " phrase ") of every lexicon phrase opening with them.
        self.phrases: dict[str, list[tuple[int, str]]] = {}
        #: (bit, keyword) of every CJK keyword.
        self.cjk: list[tuple[int, str]] = []
        #: Every lexicon, in bit order (for tests).
        self.lexicons: list[Lexicon] = []

    def add(self, lex: Lexicon) -> int:
        """Register ``lex``'s vocabulary; returns its bit."""
        bit = 1 << self.count
        self.count += 1
        for w in lex.words:
            self.words[w] = self.words.get(w, 0) | bit
        for st in lex.stems:
            self.stems[st] = self.stems.get(st, 0) | bit
        for key, phrases in lex.phrase_index.items():
            self.phrases.setdefault(key, []).extend((bit, p) for p in phrases)
        self.cjk.extend((bit, k) for k in lex.cjk)
        self.lexicons.append(lex)
        return bit


_INDEX = _LexiconIndex()


class Lexicon:
    """A keyword family: exact words, inflected stems, multi-word phrases and CJK keywords.

    Args:
        words: Single tokens (exact; a trailing ``s`` is also accepted).
        stems: Token prefixes of at least 4 characters, cut to 8 (``lygt`` matches ``lygtis``, ``lygtį``).
        phrases: Multi-word phrases (matched on token boundaries; punctuation ignored).
        cjk: Keywords for scripts written without spaces (substring match).
    """

    def __init__(self, words: Iterable[str] = (), stems: Iterable[str] = (), phrases: Iterable[str] = (),
                 cjk: Iterable[str] = ()) -> None:
        """Build the lexicon (call at import time)."""
        self.words = frozenset(w.lower() for w in words)
        stems = tuple(s.lower()[:STEM_LENGTHS[-1]] for s in stems)
        bad = [s for s in stems if len(s) < STEM_LENGTHS[0]]
        if bad:
            raise ValueError(f"stems must have at least {STEM_LENGTHS[0]} characters: {bad}")
        self.stems = frozenset(stems)
        index: dict[str, list[str]] = {}
        for p in phrases:
            toks = TOKEN_RE.findall(p.lower())
            key = " ".join(toks[:2])
            index.setdefault(key, []).append(" " + " ".join(toks) + " ")
        # Phrases indexed by their first two tokens: only candidates whose opening bigram occurs are checked.
        self.phrase_index = {k: tuple(v) for k, v in index.items()}
        self.phrase_keys = frozenset(index)
        self.phrases = tuple(p for v in index.values() for p in v)
        self.cjk = tuple(cjk)
        #: This lexicon's bit in :attr:`Features.hits`.
        self.bit = _INDEX.add(self)

    def find(self, f: Features, limit: int = 8) -> list[str]:
        """Return the distinct vocabulary items of this lexicon present in ``f`` (at most ``limit``)."""
        if not f.hits & self.bit:
            return []
        out = sorted(self.words & f.words)
        if self.stems and len(out) < limit:
            out += [s for s in sorted(self.stems & f.prefixes) if not any(w.startswith(s) for w in out)]
        if len(out) < limit:
            out += [p[1:-1] for k in sorted(self.phrase_keys & f.grams) for p in self.phrase_index[k]
                    if p in f.norm]
        if f.cjk and len(out) < limit:
            out += [k for k in self.cjk if k[0] in f.chars and k in f.text]
        return out[:limit]

    def any(self, f: Features) -> bool:
        """Whether anything of this lexicon is present in ``f``."""
        return bool(f.hits & self.bit)

    def any_scan(self, f: Features) -> bool:
        """:meth:`any` by scanning this lexicon alone (the reference the shared index is tested against)."""
        if not self.words.isdisjoint(f.words):
            return True
        if self.stems and not self.stems.isdisjoint(f.prefixes):
            return True
        for k in self.phrase_keys & f.grams:
            if any(p in f.norm for p in self.phrase_index[k]):
                return True
        return f.cjk and any(k[0] in f.chars and k in f.text for k in self.cjk)


def near(f: Features, first: frozenset[str], second: frozenset[str], window: int = 8,
         blockers: frozenset[str] = frozenset()) -> str | None:
    """Find a token of ``first`` followed within ``window`` tokens by a token of ``second``.

    Args:
        f: Features to search.
        first: Tokens that open the pattern (e.g. verbs: ``write``, ``implement``).
        second: Tokens that close it (e.g. nouns: ``function``, ``script``); prefixes of 4-8 chars also match.
        window: Tokens after the opener to look at.
        blockers: Tokens that cancel a match when they sit right before the closer (``movie script``).

    Returns:
        The matched closer (from ``second``), or None.
    """
    if first.isdisjoint(f.words):
        return None
    toks = f.tokens
    for i, tok in enumerate(toks):
        if tok not in first:
            continue
        for j in range(i + 1, min(len(toks), i + 1 + window)):
            t = toks[j]
            hit = t if t in second else (t[:-1] if t[-1:] == "s" and t[:-1] in second else None)
            if hit is None:
                continue
            if toks[j - 1] in blockers:
                break
            return hit
    return None
