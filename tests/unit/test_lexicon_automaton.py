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
