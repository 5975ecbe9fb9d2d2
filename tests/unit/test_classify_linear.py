"""Unit tests for the classifier's learned component (serve.router.classify.linear) and follow-up handling."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from serve.router.classify import Classifier
from serve.router.classify.extract import view_of
from serve.router.classify.linear import (
    BUCKETS,
    DENSE_NAMES,
    RULE_TASKS,
    WEIGHTS_PATH,
    LinearModel,
    dense_features,
    load_default,
    text_features,
)


def chat(*turns: str) -> dict[str, Any]:
    roles = ["user", "assistant"]
    return {"model": "auto", "messages": [{"role": roles[k % 2], "content": t} for k, t in enumerate(turns)]}


@pytest.fixture(scope="module")
def model() -> LinearModel:
    return LinearModel.load()


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier()


def test_text_features_are_deterministic_bounded_and_never_empty() -> None:
    a = text_features("write a function that sorts a list")
    b = text_features("write a function that sorts a list")
    assert np.array_equal(a, b)
    assert a.dtype == np.int64 and a.min() >= 0 and a.max() < BUCKETS
    assert len(text_features("")) >= 1
    # digits are folded, so numbers differing only in value share features
    assert np.array_equal(text_features("solve 12x = 7"), text_features("solve 34x = 9"))
    assert len(text_features("证明两个奇数之和是偶数")) > 10


def test_dense_features_follow_the_documented_layout() -> None:
    view = view_of(chat("hello"))
    feats = dense_features(view, [])
    assert feats.shape == (len(DENSE_NAMES),)
    assert feats[DENSE_NAMES.index("bias")] == 1.0
    assert feats[DENSE_NAMES.index("short")] == 1.0 and feats[DENSE_NAMES.index("multi_turn")] == 0.0


def test_shipped_weights_load(model: LinearModel) -> None:
    assert WEIGHTS_PATH.exists()
    assert model.classes == RULE_TASKS
    assert model.sparse.shape == (BUCKETS, len(RULE_TASKS))
    assert model.dense.shape == (len(DENSE_NAMES), len(RULE_TASKS))
    assert load_default() is not None


def test_save_and_load_round_trip(model: LinearModel, tmp_path: Any) -> None:
    path = tmp_path / "w.npz"
    model.save(path)
    again = LinearModel.load(path)
    ids = text_features("prove that there are infinitely many primes")
    dense = np.zeros(len(DENSE_NAMES), dtype=np.float32)
    assert np.allclose(model.probabilities(ids, dense), again.probabilities(ids, dense), atol=1e-2)


@pytest.mark.parametrize(("text", "task"), [
    ("Write a Python function that reverses a linked list.", "code"),
    ("Solve for x: 3x + 7 = 22", "math"),
    ("Prove that the square root of 2 is irrational.", "reasoning"),
    ("Write a short poem about the sea.", "general"),
    ("用Python写一个函数，判断一个字符串是不是回文。", "code"),
    ("Löse die Gleichung 2x - 4 = 10.", "math"),
])
def test_linear_model_alone_gets_obvious_prompts(model: LinearModel, text: str, task: str) -> None:
    clf = Classifier(options={"learned": False})
    ids, dense = clf.linear_inputs(chat(text))
    probs = model.probabilities(ids, dense)
    assert probs.shape == (len(RULE_TASKS),) and abs(float(probs.sum()) - 1.0) < 1e-5
    assert model.classes[int(probs.argmax())] == task


def test_classifier_reports_the_linear_signal_when_rules_are_unsure(clf: Classifier) -> None:
    result = clf.classify(chat("Ann is taller than Bo, Cy is taller than Ann. Who is the shortest? Explain."))
    assert any(s.name == "linear" for s in result.signals)
    assert "linear(p=" in result.reason


def test_confident_rules_skip_the_linear_model(clf: Classifier) -> None:
    text = "```python\ndef f(x):\n    return x\n```\nWhy does this raise a TypeError: f() takes 1 positional argument"
    result = clf.classify(chat(text))
    assert result.task == "code" and not any(s.name == "linear" for s in result.signals)


def test_linear_class_not_configured_falls_back_to_default() -> None:
    clf = Classifier(tasks=("chat", "code"), default_task="chat")
    assert clf.classify(chat("Prove that the square root of 2 is irrational.")).task == "chat"


def test_learned_can_be_switched_off() -> None:
    clf = Classifier(options={"learned": False})
    assert clf.linear is None
    assert not any(s.name == "linear" for s in clf.classify(chat("hmm, interesting")).signals)


@pytest.mark.parametrize(("turns", "task"), [
    (("Write a Python function that returns the n-th Fibonacci number.",
      "```python\ndef fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n```", "now make it faster"), "code"),
    (("Solve x^2 - 5x + 6 = 0.", "x = 2 or x = 3.", "and if it were 7?"), "math"),
    (("Write a short poem about autumn.", "Leaves of amber drift and fall.", "make it sadder"), "general"),
])
def test_short_follow_up_inherits_the_conversation_task(clf: Classifier, turns: tuple[str, ...],
                                                         task: str) -> None:
    assert clf.classify(chat(*turns)).task == task


def test_follow_up_can_be_disabled() -> None:
    clf = Classifier(options={"learned": False, "follow_up_chars": 0})
    body = chat("Solve x^2 - 5x + 6 = 0.", "x = 2 or x = 3.", "and if it were 7?")
    assert clf.classify(body).task == "general"


def test_text_features_are_distinct_and_sorted() -> None:
    ids = text_features("the the the the cat cat")
    assert np.array_equal(ids, np.unique(ids))
    assert len(text_features("aaaa aaaa aaaa")) < len(text_features("abcd efgh ijkl"))


def test_latin_tool_names_split_from_other_scripts_in_word_features() -> None:
    glued = set(text_features("gitで取り消す").tolist())
    alone = set(text_features("git").tolist())
    # the word feature for "git" is shared, though no space separates it from the Japanese
    assert len(glued & alone) >= 4


@pytest.mark.parametrize(("text", "task"), [
    ("how do i undo the last git commit but keep the changes", "code"),
    ("excel formula to sum column C only when column A says Madrid", "code"),
    ("Gitで間違えてmainブランチにコミットしてしまいました。取り消す方法を教えてください。", "code"),
    ("MySQL에서 날짜별로 주문 수를 세는 쿼리 좀 알려줘", "code"),
    ("Convert 72 degrees Fahrenheit to Celsius please", "math"),
    ("How many different 4-digit PIN codes have no repeated digits?", "math"),
    ("All bloops are razzies and all razzies are lazzies. Are all bloops definitely lazzies?", "reasoning"),
    ("who won the world cup in 2010", "general"),
    ("Write a friendly rejection email to a candidate who reached the final round", "general"),
])
def test_shipped_classifier_gets_everyday_prompts(clf: Classifier, text: str, task: str) -> None:
    assert clf.classify(chat(text)).task == task
