"""The classifier's speed work finds exactly what the plain scans found: shared lexicon index, single-buffer
text features, lazily detected language, the direct lane of the generate endpoints.

Reference implementations (the scans as they were before the speed work) live here, and every prompt of the
route-eval sets goes through both. ``bench/route_eval/compare_decisions.py`` checks whole decisions against a
git revision.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import serve.router.classify.code  # noqa: F401  (registers the lexicons)
import serve.router.classify.general  # noqa: F401
import serve.router.classify.maths  # noqa: F401
import serve.router.classify.reasoning  # noqa: F401
from serve.router.classify import Classifier
from serve.router.classify import linear as lin
from serve.router.classify.extract import Scope, view_of
from serve.router.classify.features import _INDEX, Features, Lexicon
from serve.router.classify.language import detect_language
from serve.router.classify.types import Signal

EVAL = Path(__file__).resolve().parents[2] / "bench" / "route_eval"


def _texts() -> list[str]:
    out: list[str] = []
    for name in ("dataset", "holdout", "holdout2", "holdout3", "holdout4"):
        for line in (EVAL / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            if "prompt" in item:
                out.append(str(item["prompt"]))
            for m in item.get("messages", ()):
                content = m.get("content")
                out.append(content if isinstance(content, str) else json.dumps(content, ensure_ascii=False))
    return out + ["", " ", "a", "ab", "abc", "\n\n", "1", "日本", "def f():\n    return 1", "x" * 3000]


TEXTS = _texts()


@pytest.fixture(scope="module")
def features() -> list[Features]:
    return [Scope.of(t).features for t in TEXTS]


def _find_scan(lex: Lexicon, f: Features, limit: int = 8) -> list[str]:
    """``Lexicon.find`` as it was: no shared index."""
    out = sorted(lex.words & f.words)
    if lex.stems and len(out) < limit:
        out += [s for s in sorted(lex.stems & f.prefixes) if not any(w.startswith(s) for w in out)]
    if len(out) < limit:
        out += [p[1:-1] for k in sorted(lex.phrase_keys & f.grams) for p in lex.phrase_index[k] if p in f.norm]
    if f.cjk and len(out) < limit:
        out += [k for k in lex.cjk if k[0] in f.chars and k in f.text]
    return out[:limit]


def test_the_shared_index_holds_every_lexicon() -> None:
    assert len(_INDEX.lexicons) >= 30
    assert [lex.bit for lex in _INDEX.lexicons] == [1 << i for i in range(len(_INDEX.lexicons))]


def test_shared_index_finds_what_each_lexicon_found_alone(features: list[Features]) -> None:
    hits = 0
    for f in features:
        for lex in _INDEX.lexicons:
            alone = lex.any_scan(f)
            assert lex.any(f) is alone, (lex.bit, f.text[:40])
            assert lex.find(f) == _find_scan(lex, f)
            hits += alone
    assert hits > len(features), "the corpus exercises the lexicons"


def test_shared_index_sees_each_kind_of_vocabulary() -> None:
    lex = Lexicon(words=("zebrafoo",), stems=("quuxal",), phrases=("flim flam",), cjk=("鳄鱼",))
    for text, found in (("a zebrafoo here", "zebrafoo"), ("quuxalities", "quuxal"), ("the flim, flam!", "flim flam"),
                        ("我的鳄鱼", "鳄鱼")):
        f = Features.of(text)
        assert lex.any(f) and lex.any_scan(f)
        assert lex.find(f) == [found]
    f = Features.of("nothing of it")
    assert not lex.any(f) and lex.find(f) == []


def _text_features_scan(text: str) -> np.ndarray:
    """``text_features`` as it was: one array per n, concatenated."""
    if len(text) > lin.HEAD_CHARS + lin.TAIL_CHARS:
        text = text[:lin.HEAD_CHARS] + " " + text[-lin.TAIL_CHARS:]
    norm = " " + " ".join(text.translate(lin._DIGITS).split()) + " "
    codes = np.frombuffer(norm.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    parts = [codes ^ lin._SALTS[1]]
    h = codes
    for n in range(2, lin.NGRAM_MAX + 1):
        if len(codes) < n:
            break
        h = h[:-1] * lin._PRIME + codes[n - 1:]
        parts.append(h ^ lin._SALTS[n])
    words = lin._WORD_RE.findall(norm)
    if len(words) > 2 * lin.WORD_WINDOW:
        words = words[:lin.WORD_WINDOW] + words[-lin.WORD_WINDOW:]
    hashed = [zlib.crc32(w.encode()) for w in words]
    hashed += [zlib.crc32(f"{a} {b}".encode()) ^ 0x5BD1E995 for a, b in zip(words, words[1:], strict=False)]
    hashed.append(0x2545F491)
    parts.append(np.asarray(hashed, dtype=np.uint64) | np.uint64(1 << 40))
    return np.unique(((np.concatenate(parts) * lin._MIX) >> lin._SHIFT).astype(np.int64))


def test_text_features_are_the_plain_computation() -> None:
    for text in TEXTS:
        low = text.lower()
        assert np.array_equal(lin.text_features(low), _text_features_scan(low)), low[:40]


def test_native_text_features_are_the_numpy_computation() -> None:
    if lin._NGRAM_IDS is None:
        pytest.skip("the optional C extension is not built (no compiler at install)")
    import random

    rng = random.Random(7)
    extra = ["".join(rng.choice("ab c1\u00e9\u65e5\U0001f600_-\n") for _ in range(rng.randint(0, 40))) for _ in range(300)]
    for text in [*TEXTS, *extra]:
        low = text.lower()
        native, plain = lin.text_features(low), lin.text_features_numpy(low)
        assert native.dtype == plain.dtype == np.int64
        assert np.array_equal(native, plain), low[:40]


def test_the_c_extension_is_built_where_a_compiler_is() -> None:
    import shutil
    import sysconfig

    headers = Path(sysconfig.get_paths()["include"], "Python.h").exists()
    if not (shutil.which("cc") or shutil.which("gcc")) or not headers:
        pytest.skip("no C compiler or Python headers here: the numpy computation is used")
    assert lin._NGRAM_IDS is not None, "setup.py builds serve/router/classify/_native.c: run `make venv` again"


def test_language_and_signal_order_are_worked_out_when_read() -> None:
    clf = Classifier()
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "¿Cuántos días tiene un año bisiesto?"}]}
    c = clf.classify(body)
    assert c._language is None, "nothing detected before it is asked for"
    assert c.language == detect_language("¿Cuántos días tiene un año bisiesto?") == "es"
    names = [s.name for s in c.signals]
    assert names.count("language") == 1
    assert [s.weight for s in c.signals] == sorted((s.weight for s in c.signals), reverse=True)
    assert c == clf.classify(body)
    assert Signal("code", "code", 1.0, "x")._replace(scope="ctx").scope == "ctx"


def test_dense_features_are_the_float32_array_computation() -> None:
    clf = Classifier(tasks=("general", "code", "math", "reasoning"), default_task="general")
    checked = 0
    for text in TEXTS[::3]:
        body = {"messages": [{"role": "system", "content": "You are a helpful coder."},
                             {"role": "user", "content": text[:300] or "hi"},
                             {"role": "assistant", "content": "ok"}, {"role": "user", "content": text or "x"}]}
        view = view_of(body, **clf.bounds)
        signals = clf._collect(view, clf._context)
        assert np.array_equal(lin.dense_features(view, signals), lin.dense_features_numpy(view, signals))
        checked += 1
    rng = np.random.default_rng(0)
    view = view_of({"messages": [{"role": "user", "content": "x"}]})
    for _ in range(2000):
        sigs = [Signal("code", str(rng.choice(lin.RULE_TASKS)), round(float(rng.uniform(-4, 4)), 3), "x",
                       str(rng.choice(("last", "ctx", "sys")))) for _ in range(int(rng.integers(0, 12)))]
        assert np.array_equal(lin.dense_features(view, sigs), lin.dense_features_numpy(view, sigs))
    assert checked > 100


def test_probabilities_are_numpys_plain_softmax() -> None:
    model = lin.load_default()
    assert model is not None
    rng = np.random.default_rng(1)
    for text in TEXTS[::7]:
        ids = lin.text_features(text.lower())
        dense = rng.uniform(0, 1, len(lin.DENSE_NAMES)).astype(np.float32)
        n = len(ids)
        z = np.full(n, 1.0 / np.sqrt(n), dtype=np.float32) @ np.take(model.sparse, ids, axis=0) + dense @ model.dense
        z = np.exp(z - z.max())
        assert np.array_equal(model.probabilities(ids, dense), z / z.sum())
