"""Unit tests for the round-5 classifier signals (sequences, riddles, impossibility arguments, syllogisms,
percentage changes, short tech queries) and the shipped classifier on the prompts they target."""

from __future__ import annotations

from typing import Any

import pytest

from serve.router.classify import Classifier


def chat(*turns: str) -> dict[str, Any]:
    roles = ["user", "assistant"]
    return {"model": "auto", "messages": [{"role": roles[k % 2], "content": t} for k, t in enumerate(turns)]}


@pytest.fixture(scope="module")
def rules() -> Classifier:
    return Classifier(options={"learned": False})


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier()


def details(clf: Classifier, text: str) -> set[str]:
    return {s.detail for s in clf.classify(chat(text)).signals if s.weight > 0}


@pytest.mark.parametrize(("text", "detail"), [
    ("what comes next: 1, 4, 9, 16, ?", "sequence puzzle"),
    ("找规律填数：2, 4, 8, 16, ( )", "sequence puzzle"),
    ("¿Qué número sigue en la serie 1, 3, 6, 10?", "sequence puzzle"),
    ("What has keys but can't open locks?", "riddle framing"),
    ("O que é, o que é: tem dentes mas não morde?", "riddle framing"),
    ("什么东西越洗越脏？", "riddle framing"),
    ("Qu'est-ce qui a des dents mais ne mange jamais ?", "riddle framing"),
    ("Just the idea, no formal proof: why can't there be a largest prime?", "impossibility"),
    ("All bloops are razzies and some razzies are lazzies. Are some bloops lazzies?", "syllogism"),
    ("price went from 80 to 92, what % increase is that", "percent change"),
    ("numpy mean of each row ignoring nan", "short tech query"),
])
def test_round5_signals_fire(rules: Classifier, text: str, detail: str) -> None:
    assert detail in details(rules, text)


@pytest.mark.parametrize("text", [
    "what is the best laptop but not too expensive?",
    "I have a laptop but can't connect to the wifi, what should I check?",
    "I want all the code and some tests for it",
])
def test_riddle_and_syllogism_signals_stay_quiet_on_ordinary_requests(rules: Classifier, text: str) -> None:
    found = details(rules, text)
    assert "riddle framing" not in found and "syllogism" not in found


def test_short_tech_query_needs_a_short_query_without_numbers(rules: Classifier) -> None:
    assert "short tech query" not in details(rules, "numpy: why does my array of 3 numbers print 4 values?")
    long_text = "I keep hearing about pandas at work and wonder whether I should learn it some day soon"
    assert "short tech query" not in details(rules, long_text)


@pytest.mark.parametrize(("text", "task"), [
    ("what comes next: 2, 6, 12, 20, 30, ?", "reasoning"),
    ("Not looking for a formal proof, just the idea: why can't there be a largest prime number?", "reasoning"),
    ("什么东西越洗越脏？", "reasoning"),
    ("I have two job offers: 62k fully remote at a startup, or 71k with a 50 minute commute at a big stable "
     "company. I'm 28 and saving for a flat. Weigh it carefully and tell me which you'd pick.", "reasoning"),
    ("price went from 80 to 92, what % increase is that", "math"),
    ("Find the sum of the first 20 terms of 3, 7, 11, 15, ...", "math"),
    ("difference between let and const in js", "code"),
    ("cron expression for every weekday at 6:30am", "code"),
    ("numpy mean of each row ignoring NaN", "code"),
    ("my 2 year old fights bedtime every single night, it takes like 2 hours. any tips?", "general"),
    ("what to do in Lisbon in 3 days with two kids aged 5 and 8", "general"),
])
def test_shipped_classifier_on_round5_contrasts(clf: Classifier, text: str, task: str) -> None:
    assert clf.classify(chat(text)).task == task
