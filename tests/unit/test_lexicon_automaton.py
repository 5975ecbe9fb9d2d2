"""The Aho-Corasick look-up of the shared lexicon index finds exactly what the set look-ups find.

Every text of the route-eval sets (and a few edge cases) goes through both paths: the lexicon bit mask, the
stems and phrases found, and every lexicon's ``find``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import serve.router.classify.code  # noqa: F401  (registers the lexicons)
import serve.router.classify.general  # noqa: F401
import serve.router.classify.maths  # noqa: F401
import serve.router.classify.reasoning  # noqa: F401
from serve.router.classify import features as feat
from serve.router.classify.extract import Scope
from serve.router.classify.features import _INDEX, Features, Lexicon

from .test_classify_speed import TEXTS

pytestmark = pytest.mark.skipif(feat.ahocorasick is None, reason="pyahocorasick is not installed")

EDGES = ["cats", "cat", "bus", "buses", "integ", "integr", "integral", "integrals", "lygt", "lygtis", "show that",
         "show that.", "solve for x", "方程式", "方程", "数学の方程式", "how many ways are there", "a " * 500]


@pytest.fixture
def scan_only() -> Iterator[None]:
    _INDEX.use_automaton = False
    try:
        yield
    finally:
        _INDEX.use_automaton = True


def _found(text: str) -> tuple[int, frozenset[str], frozenset[str], list[list[str]]]:
    f = Features.of(text)
    return f.hits, f.found_stems, f.found_phrases, [lex.find(f) for lex in _INDEX.lexicons]


def test_automaton_and_set_look_ups_agree_on_every_prompt() -> None:
    texts = [Scope.of(t).focus_lowered for t in TEXTS] + EDGES
    fast = [_found(t) for t in texts]
    _INDEX.use_automaton = False
    try:
        plain = [_found(t) for t in texts]
    finally:
        _INDEX.use_automaton = True
    assert sum(1 for hits, *_ in fast if hits) > len(texts) // 2, "the corpus exercises the lexicons"
    for text, a, b in zip(texts, fast, plain, strict=True):
        assert a == b, text[:40]


def test_hits_scan_is_the_reference(scan_only: None) -> None:
    f = Features.of("write a python function that integrates")
    assert f.hits == f.hits_scan() and f.hits


def test_a_lexicon_added_later_is_found() -> None:
    lex = Lexicon(words=("blorptastic",), stems=("quoxil",), phrases=("wibble wobble",), cjk=("龍舟",))
    for text, found in (("so blorptastics", "blorptastic"), ("quoxilating", "quoxil"), ("wibble, wobble", "wibble wobble"),
                        ("看龍舟", "龍舟")):
        f = Features.of(text)
        assert lex.any(f) and lex.any_scan(f) and lex.find(f) == [found]
    assert not lex.any(Features.of("quox wibble"))


def _comparisons_scan(f: Features) -> int:
    """``reasoning._comparisons`` as it was: every comparative searched for on its own."""
    from serve.router.classify import reasoning

    if f.cjk:
        return len(reasoning._CJK_COMPARE_RE.findall(f.text))
    return sum(f.norm.count(p) for p in reasoning._COMPARATIVES if p in f.norm)


def _structural_scan(prose: str) -> list[tuple[str, float]]:
    """``maths._structural`` as it was: the character and gate tests one by one."""
    import re

    from serve.router.classify import maths

    out: list[tuple[str, float]] = []
    if not any(c in prose for c in "=^*+/×÷²³∫∑√∞≤≥≠π∂(-%?") or not re.search(r"\d|[∫∑√∞π∂]", prose):
        return out
    if any(g in prose for g in maths._EQUATION_GATES) and any(rx.search(prose) for rx in maths._EQUATION_RES):
        out.append(("equation", 2.0))
    if maths._ARITH_RE.search(prose):
        out.append(("arithmetic", 1.2))
    return out


def test_one_pass_rule_gates_match_the_plain_tests() -> None:
    from serve.router.classify import code, maths, reasoning

    texts = [Scope.of(t).focus_lowered for t in TEXTS] + EDGES + ["sarah is taller than tom . tom is taller than uma"]
    compared = 0
    for text in texts:
        f = Features.of(text)
        assert reasoning._comparisons(f) == _comparisons_scan(f), text[:40]
        assert maths._structural(text) == _structural_scan(text), text[:40]
        assert (code._FILE_NAMES_RE.search(text) is not None) == any(n in text for n in code.FILE_NAMES)
        compared += reasoning._comparisons(f) > 0
    assert compared > 0
