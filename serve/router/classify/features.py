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

With ``pyahocorasick`` installed (a dependency; wheels for every platform), that look-up is one pass of an
Aho-Corasick automaton over the normalised string instead: every word (and its plural), stem and phrase of every
lexicon is a pattern on token boundaries (``" word "``, ``" stem"``, ``" a phrase "``), and the CJK keywords a
second automaton over the text. It finds exactly what the set look-ups find (a 4-character stem must open a
token longer than 4, as the prefix sets require; tested on every route-eval prompt), without building the
prefix and bigram sets; :meth:`Features.hits_scan` is the set-based reference and the fallback.

Everything a lexicon returns comes from its own vocabulary, so it is safe to put in a signal's detail.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

try:
    import ahocorasick
except ImportError:  # pragma: no cover - the set-based look-up does the same, slower
    ahocorasick = None

# c++ / c# / f# / .net first, then letter runs (apostrophes split: python'e -> python e), then numbers. Latin
# letters and other scripts form separate tokens, so a tool name glued to CJK text or a Korean particle is
# found ("gitで" -> git, で; "mysql에서" -> mysql, 에서).
TOKEN_RE = re.compile(r"c\+\+|[cf]#|\.net\b|[a-z\u00c0-\u024f]+|[^\W\d_a-z\u00c0-\u024f]+|\d+(?:[.,]\d+)*")
CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
STEM_LENGTHS = (4, 5, 6, 7, 8)
_FIRST = operator.itemgetter(0)
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
    _stems: frozenset[str] | None = field(default=None, repr=False)
    _phrases: frozenset[str] | None = field(default=None, repr=False)

    @classmethod
    def of(cls, focus_lowered: str) -> Features:
        """Tokenise ``focus_lowered`` once."""
        tokens = TOKEN_RE.findall(focus_lowered)[:MAX_TOKENS]
        uniq = set(tokens)
        words = uniq | {t[:-1] for t in uniq if len(t) > 3 and t[-1] == "s"}
        numbers = sum(map(str.isdigit, map(_FIRST, tokens)))  # tokens that start with a digit
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
        if self._hits is None and _INDEX.scan(self) is None:
            self._hits = self.hits_scan()
        return self._hits  # type: ignore[return-value]

    def hits_scan(self) -> int:
        """:attr:`hits` by set look-ups in the shared index (the reference, and the path without the automaton)."""
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
        return mask

    @property
    def found_stems(self) -> frozenset[str]:
        """Every lexicon stem that opens a token longer than 4 characters (the stems in :attr:`prefixes`)."""
        if self._stems is None and _INDEX.scan(self) is None:
            self._stems = frozenset(_INDEX.stems.keys() & self.prefixes)
        return self._stems  # type: ignore[return-value]

    @property
    def found_phrases(self) -> frozenset[str]:
        """Every lexicon phrase (``" a phrase "``) present in :attr:`norm`."""
        if self._phrases is None and _INDEX.scan(self) is None:
            norm, phrases = self.norm, _INDEX.phrases
            self._phrases = frozenset(p for k in phrases.keys() & self.grams for _, p in phrases[k] if p in norm)
        return self._phrases  # type: ignore[return-value]

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
        #: Whether :meth:`scan` may use the automata (tests turn it off to exercise the set look-ups).
        self.use_automaton = ahocorasick is not None
        self._built = -1
        self._norm_ac: Any = None
        self._cjk_ac: Any = None

    def build(self) -> None:
        """(Re)build the automata for the lexicons registered so far (once; again after a new lexicon)."""
        if ahocorasick is None or self._built == self.count:
            return
        # pattern -> [bits, stem or "", phrase or "", the stem needs a longer token]
        pats: dict[str, list[Any]] = {}

        def add(pattern: str, bits: int, stem: str = "", phrase: str = "", longer: bool = False) -> None:
            entry = pats.setdefault(pattern, [0, stem, "", longer])
            entry[0] |= bits
            entry[2] = entry[2] or phrase

        for w, bits in self.words.items():
            if w and not any(c.isspace() for c in w):  # a token never holds a space
                add(f" {w} ", bits)
                if len(w) >= 3:  # Features.words holds the singular of a token longer than 3 ending in "s"
                    add(f" {w}s ", bits)
        for st, bits in self.stems.items():
            if not any(c.isspace() for c in st):
                # A prefix of 4 counts only for a token longer than 4 (Features.prefixes); longer prefixes imply it.
                add(" " + st, bits, stem=st, longer=len(st) <= STEM_LENGTHS[0])
        for entries in self.phrases.values():
            for bit, p in entries:
                if p.strip():
                    add(p, bit, phrase=p)
        norm_ac = ahocorasick.Automaton()
        for pattern, (bits, stem, phrase, longer) in pats.items():
            norm_ac.add_word(pattern, (bits, stem, phrase, longer))
        norm_ac.make_automaton()
        cjk: dict[str, int] = {}
        for bit, kw in self.cjk:
            if kw:
                cjk[kw] = cjk.get(kw, 0) | bit
        cjk_ac = ahocorasick.Automaton()
        for kw, bits in cjk.items():
            cjk_ac.add_word(kw, bits)
        if cjk:
            cjk_ac.make_automaton()
        self._norm_ac, self._cjk_ac, self._built = norm_ac, (cjk_ac if cjk else None), self.count

    def scan(self, f: Features) -> int | None:
        """Fill ``f``'s hits, found stems and found phrases in one automaton pass; None without the automaton."""
        if not self.use_automaton:
            return None
        if self._built != self.count:
            self.build()
        norm = f.norm
        mask = 0
        stems: list[str] = []
        phrases: list[str] = []
        for end, (bits, stem, phrase, longer) in self._norm_ac.iter(norm):
            if longer and norm[end + 1] == " ":  # norm ends with a space: end + 1 is always in range
                continue
            mask |= bits
            if stem:
                stems.append(stem)
            if phrase:
                phrases.append(phrase)
        if f.cjk and self._cjk_ac is not None:
            for _, bits in self._cjk_ac.iter(f.text):
                mask |= bits
        f._hits, f._stems, f._phrases = mask, frozenset(stems), frozenset(phrases)
        return mask

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


def build_index() -> None:
    """Build the shared index's automata now (the classifier does it when it is created)."""
    _INDEX.build()


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
        #: The phrases in the order :meth:`find` reports them (by opening bigram, then as listed).
        self.phrase_order = tuple(p for k in sorted(index) for p in index[k])
        self.phrase_set = frozenset(self.phrases)
        self.cjk = tuple(cjk)
        #: This lexicon's bit in :attr:`Features.hits`.
        self.bit = _INDEX.add(self)

    def find(self, f: Features, limit: int = 8) -> list[str]:
        """Return the distinct vocabulary items of this lexicon present in ``f`` (at most ``limit``)."""
        if not f.hits & self.bit:
            return []
        out = sorted(self.words & f.words)
        if self.stems and len(out) < limit:
            out += [s for s in sorted(self.stems & f.found_stems) if not any(w.startswith(s) for w in out)]
        if len(out) < limit and self.phrases:
            found = self.phrase_set & f.found_phrases
            if found:
                out += [p[1:-1] for p in self.phrase_order if p in found]
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
