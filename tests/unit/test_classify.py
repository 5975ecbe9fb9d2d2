"""Unit tests for serve.router.classify: each signal family, the pipeline, and the documented hard cases."""

from __future__ import annotations

from typing import Any

import pytest

from serve.router.classify import Classification, Classifier, Signal
from serve.router.classify.code import CodeSignals
from serve.router.classify.extract import FOCUS_CHARS, view_of
from serve.router.classify.general import GeneralSignals
from serve.router.classify.header import HeaderSignal
from serve.router.classify.language import detect_language
from serve.router.classify.maths import MathSignals
from serve.router.classify.modality import ModalitySignals
from serve.router.classify.reasoning import ReasoningSignals
from serve.router.classify.tools import ToolSignals
from serve.router.classify.types import SignalContext

TASKS = ("code", "math", "vision", "reasoning", "general")


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": text}], **extra}


def details(signals: list[Signal]) -> set[str]:
    return {s.detail for s in signals}


@pytest.fixture(scope="module")
def clf() -> Classifier:
    return Classifier()


# --- signal families -------------------------------------------------------------------------------------


def test_header_signal_known_task_case_insensitive() -> None:
    sig = HeaderSignal().read({"X-Qwen-Task": " Math "}, TASKS)
    assert sig is not None and sig.task == "math" and sig.detail == "x-qwen-task=math"


def test_header_signal_ignores_unknown_task_and_missing_header() -> None:
    assert HeaderSignal().read({"x-qwen-task": "poetry"}, TASKS) is None
    assert HeaderSignal().read({}, TASKS) is None
    assert HeaderSignal().read(None, TASKS) is None


def test_modality_counts_images_videos_and_audio() -> None:
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "u"}},
        {"type": "video_url", "video_url": {"url": "v"}}, {"type": "input_audio", "input_audio": {}}]}]}
    sigs = ModalitySignals().detect(view_of(body), SignalContext(tasks=TASKS))
    assert {(s.task, s.detail) for s in sigs} == {
        ("vision", "image parts(1)"), ("vision", "video parts(1)"), ("audio", "audio parts(1)")}
    assert next(s for s in sigs if s.task == "audio").weight == 0.0  # no audio task configured


def test_tool_signals_are_hints_below_threshold() -> None:
    body = chat("hello", tools=[{"type": "function", "function": {"name": "run_python"}},
                                {"type": "function", "function": {"name": "calculator"}}])
    sigs = ToolSignals().detect(view_of(body))
    by_task = {s.task: s.weight for s in sigs}
    assert 0 < by_task["code"] < 1.0 and 0 < by_task["math"] < 1.0
    assert all("run_python" not in s.detail for s in sigs)


@pytest.mark.parametrize(("text", "expected"), [
    ("```python\nprint('x')\n```", "fenced block(python)"),
    ('Traceback (most recent call last):\n  File "a.py", line 3, in <module>', "stack trace"),
    ("@@ -1,3 +1,4 @@\n-a\n+b", "diff hunk"),
    ("SELECT name FROM users WHERE id = 3", "sql"),
    ("$ pip install requests", "shell command"),
    ("def foo(x):\n    return x", "syntax(structure)"),
    ("for a in users:\n    if a.id == b.user_id:\n        a.total += 1", "syntax(structure)"),
    ("dat <- dat %>% filter(private==1)", "syntax(structure)"),
    ("How to change session name django for anonymous user only", "keyword(django)"),
    ("write a function that sorts a list", "request(code)"),
    ("open main.py and change it", "file name"),
])
def test_code_signals(text: str, expected: str) -> None:
    assert expected in details(CodeSignals().detect(view_of(chat(text))))


@pytest.mark.parametrize(("text", "expected"), [
    (r"Evaluate $\int_0^1 x^2 dx$", "latex"),
    ("Solve 3x + 5 = 20", "equation"),
    ("what is 17 * 23", "arithmetic"),
    ("A car drives 60 km in 2 hours. How fast is it going?", "word problem"),
    ("Find the probability of two heads", "term(probability)"),
    ("Resuelve la ecuación", "term(ecuación)"),
    ("Išspręsk lygtį", "imperative(solve)"),
    ("解方程 x+1=2", "term(方程)"),
])
def test_math_signals(text: str, expected: str) -> None:
    assert expected in details(MathSignals().detect(view_of(chat(text))))


def test_math_ignores_formulas_inside_code_fences() -> None:
    sigs = MathSignals().detect(view_of(chat("```python\ny = 3*x**2 + 2*x - 5\n```")))
    assert sigs == []


@pytest.mark.parametrize(("text", "expected"), [
    ("Prove that sqrt(2) is irrational", "proof"),
    ("Here is a riddle for you", "puzzle"),
    ("Think carefully before you answer", "think hint"),
    ("Explain it step by step", "step by step"),
    ("请一步一步推理", "step by step"),
    ("Įrodyk, kad suma lyginė", "proof"),
    ("Acertijo: ¿quién miente?", "puzzle"),
    ("Does it follow that some cats are black?", "inference question"),
])
def test_reasoning_signals(text: str, expected: str) -> None:
    assert expected in details(ReasoningSignals().detect(view_of(chat(text))))


def test_reasoning_constraint_counting() -> None:
    text = ("Ann, Ben and Cal sit in a row. Ann sits next to Ben. Cal is older than Ben. "
            "Ben is not adjacent to the window. Who sits in the middle?")
    assert "constraints(3+)" in details(ReasoningSignals().detect(view_of(chat(text))))


@pytest.mark.parametrize(("text", "expected"), [
    ("Write a poem about the sea", "writing"),
    ("Translate this into French", "instruction(transform)"),
    ("翻译成英文：你好", "instruction(transform)"),
    ("Parašyk eilėraštį apie jūrą", "writing"),
])
def test_general_signals(text: str, expected: str) -> None:
    assert expected in details(GeneralSignals().detect(view_of(chat(text))))


@pytest.mark.parametrize(("text", "lang"), [
    ("How do I reverse a list in place?", "en"),
    ("¿Cómo puedo invertir una lista en Python?", "es"),
    ("Kaip apversti sąrašą Python kalboje?", "lt"),
    ("如何在Python中反转列表？", "zh"),
    ("Pythonでリストを反転するには？", "ja"),
    ("파이썬에서 리스트를 뒤집는 방법은?", "ko"),
    ("Как развернуть список в Python?", "ru"),
    ("Comment inverser une liste en Python ? Est-ce que c'est possible ?", "fr"),
    ("Wie kann ich eine Liste in Python umkehren? Ist das möglich?", "de"),
    ("كيف أعكس قائمة في بايثون؟", "ar"),
    ("", "und"),
])
def test_language_detection(text: str, lang: str) -> None:
    assert detect_language(text) == lang


# --- pipeline --------------------------------------------------------------------------------------------


def test_header_override_wins_over_everything(clf: Classifier) -> None:
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "```python\nprint(1)\n```"}, {"type": "image_url", "image_url": {"url": "u"}}]}]}
    result = clf.classify(body, {"x-qwen-task": "reasoning"})
    assert result.task == "reasoning" and result.reason == "header: x-qwen-task=reasoning"


def test_unknown_header_value_falls_back_to_content(clf: Classifier) -> None:
    result = clf.classify(chat("Solve 2x + 3 = 7"), {"x-qwen-task": "DROP TABLE"})
    assert result.task == "math" and "DROP" not in result.reason


def test_image_means_vision_even_with_code_text(clf: Classifier) -> None:
    body = {"messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "Write a Python function that counts the cats."}]}
    result = clf.classify(body)
    assert result.task == "vision" and result.reason == "vision: image parts(1)"


def test_vision_not_chosen_when_not_configured() -> None:
    clf = Classifier(tasks=("code", "general"))
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "write a function that parses json"},
        {"type": "image_url", "image_url": {"url": "u"}}]}]}
    assert clf.classify(body).task == "code"


def test_tools_alone_do_not_make_code(clf: Classifier) -> None:
    body = chat("What's the weather like?", tools=[{"type": "function", "function": {"name": "execute_code"}}])
    assert clf.classify(body).task == "general"


def test_tools_tip_a_weak_code_signal_over_threshold(clf: Classifier) -> None:
    text = "could you take a look at the repo for me when you have a minute"
    assert clf.classify(chat(text)).task == "general"
    body = chat(text, tools=[{"type": "function", "function": {"name": "git_status"}}])
    assert clf.classify(body).task == "code"


def test_context_turns_count_less_than_last_turn(clf: Classifier) -> None:
    body = {"messages": [
        {"role": "user", "content": "```python\ndef f():\n    return 1\n```"},
        {"role": "assistant", "content": "It returns 1."},
        {"role": "user", "content": "Thanks! Now, what's a good name for a cat?"}]}
    result = clf.classify(body)
    assert result.task == "general"
    assert any(s.detail.startswith("ctx:") for s in result.signals)


def test_follow_up_inherits_task_from_context(clf: Classifier) -> None:
    body = {"messages": [
        {"role": "user", "content": "```python\ndef f(xs):\n    return sorted(xs)[0]\n```\nwhat does this return?"},
        {"role": "assistant", "content": "The smallest element."},
        {"role": "user", "content": "and for an empty list? does it raise an IndexError?"}]}
    assert clf.classify(body).task == "code"


def test_completions_prompt_is_classified(clf: Classifier) -> None:
    assert clf.classify({"prompt": "def fibonacci(n):\n    "}).task == "code"
    assert clf.classify({"prompt": ["Solve for x: 2x + 1 = 9"]}).task == "math"
    assert clf.classify({"prompt": [1, 2, 3]}).task == "general"


def test_empty_and_malformed_bodies(clf: Classifier) -> None:
    bodies: list[dict[str, Any]] = [{}, {"messages": []}, {"messages": "oops"}, {"messages": [None, {"role": "user"}]}]
    for body in bodies:
        result = clf.classify(body)
        assert isinstance(result, Classification) and result.task == "general"


def test_thinking_request_is_a_reasoning_hint(clf: Classifier) -> None:
    body = chat("Is it a good idea?", chat_template_kwargs={"enable_thinking": True})
    sigs = clf.classify(body).signals
    assert any(s.name == "thinking" and s.task == "reasoning" for s in sigs)


def test_tie_break_order_and_threshold() -> None:
    clf = Classifier(options={"threshold": 100.0, "learned": False})
    assert clf.classify(chat("Solve 2x + 3 = 7")).task == "general"
    clf = Classifier(options={"tie_order": ("math", "code")})
    assert clf.tie_order[:2] == ("math", "code")


def test_invalid_configuration_raises() -> None:
    with pytest.raises(ValueError):
        Classifier(tasks=("code",), default_task="general")
    with pytest.raises(ValueError):
        Classifier(options={"threshhold": 2})


def test_custom_task_set_routes_only_to_known_tasks() -> None:
    clf = Classifier(tasks=("chat", "code"), default_task="chat")
    assert clf.classify(chat("Solve 2x + 3 = 7")).task == "chat"
    assert clf.classify(chat("write a python script that renames files")).task == "code"
    assert clf.classify(chat("hi"), {"x-qwen-task": "chat"}).task == "chat"


# --- multilingual and hard cases -------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "task"), [
    ("写一个Python函数，计算列表的平均值", "code"),
    ("解方程：2x + 5 = 17", "math"),
    ("请证明：两个奇数的和是偶数。", "reasoning"),
    ("写一首关于秋天的诗", "general"),
    ("Escribe una función en JavaScript que invierta una cadena", "code"),
    ("Calcula la derivada de x³ + 2x", "math"),
    ("Adivinanza: ¿qué tiene dientes pero no muerde?", "reasoning"),
    ("¿Qué me recomiendas visitar en Sevilla?", "general"),
    ("Parašyk Python funkciją, kuri surūšiuotų sąrašą", "code"),
    ("Išspręsk lygtį 3x - 4 = 11", "math"),
    ("Įrodyk, kad kvadrato įstrižainės yra lygios", "reasoning"),
    ("Rekomenduok gerą filmą savaitgaliui", "general"),
])
def test_multilingual(clf: Classifier, text: str, task: str) -> None:
    assert clf.classify(chat(text)).task == task


@pytest.mark.parametrize(("text", "task"), [
    # asks for code -> code, even though it is a maths problem
    ("Write a Python program that computes how many ways 8 queens can be placed on a chessboard.", "code"),
    # asks for the number -> math, even though it mentions Python
    ("A tank holds 240 litres and drains at 8 litres per minute. How many minutes until it is empty? "
     "I tried in Python but I just want the number.", "math"),
    # code containing formulas -> code
    ("```python\ndef area(r):\n    return 3.14159 * r ** 2\n```\nwhy does this return a float?", "code"),
    # casual chat about maths -> general
    ("I hated maths at school, it was so boring.", "general"),
    ("My daughter is scared of her maths exam tomorrow. How can I calm her down?", "general"),
    # a poem about a maths topic -> general
    ("Write a poem about derivatives and integrals", "general"),
    # translation of a maths word problem -> general
    ("Translate into English: Un tren recorre 120 km en 2 horas. ¿Cuál es su velocidad?", "general"),
    ("I watched Monty Python last night, what should I watch next?", "general"),
])
def test_hard_cases(clf: Classifier, text: str, task: str) -> None:
    assert clf.classify(chat(text)).task == task


# --- bounded scan and no prompt text in explanations -----------------------------------------------------


def test_bounded_scan_of_long_prompts(clf: Classifier) -> None:
    filler = "lorem ipsum dolor sit amet " * 4000  # ~108 KB
    body = {"messages": [
        {"role": "system", "content": "You are helpful. " * 1000},
        {"role": "user", "content": filler * 2},
        {"role": "assistant", "content": filler},
        {"role": "user", "content": "Solve 3x + 1 = 10. " + filler}]}
    view = view_of(body)
    assert view.scanned_chars <= 1024 + 3072 + 1 + 2048 + 1024 + 2
    assert len(view.last.focus_lowered) <= 2 * FOCUS_CHARS + 1
    assert clf.classify(body).task == "math"  # the instruction at the start of the turn is kept


def test_middle_of_long_prompt_is_not_scanned() -> None:
    middle = "Prove it. " + "x" * 10_000
    text = "hello " * 300 + middle + " bye" * 1500
    view = view_of(chat(text))
    assert "prove it" not in view.last.lowered


SECRET = "zebracorn-4242"


@pytest.mark.parametrize("text", [
    f"```{SECRET}\nprint('{SECRET}')\n```",
    f"Write a function called {SECRET} in Python",
    f"{SECRET}: solve {SECRET} = 3x + 1",
    f"Translate '{SECRET}' into French",
    f"Prove that {SECRET} is a puzzle",
    f"import {SECRET}\nfrom {SECRET} import x\n{SECRET}.run()",
])
def test_no_prompt_text_in_reason_or_details(clf: Classifier, text: str) -> None:
    body = chat(text, tools=[{"type": "function", "function": {"name": SECRET}}])
    result = clf.classify(body, {"x-qwen-task": SECRET})
    assert SECRET not in result.reason
    assert all(SECRET not in s.detail for s in result.signals)
    assert result.reason.startswith(result.task + ":") or result.reason.startswith("header:")


# --- shared token pass and generalisation ----------------------------------------------------------------


def test_lexicon_matches_words_stems_phrases_and_cjk() -> None:
    from serve.router.classify.features import Features, Lexicon

    lex = Lexicon(words=("equation",), stems=("lygt",), phrases=("step by step",), cjk=("方程",))
    assert lex.find(Features.of("solve these equations step-by-step")) == ["equation", "step by step"]
    assert lex.find(Features.of("išspręsk lygtį")) == ["lygt"]
    assert lex.find(Features.of("解方程")) == ["方程"]
    assert not lex.any(Features.of("a stepping stone"))


@pytest.mark.parametrize(("text", "task"), [
    ("Write a musical movie script about Pearl Harbor", "general"),
    ("Show that for any integer n, n^3 - n is divisible by 6.", "reasoning"),
    ("What is 15% of 240?", "math"),
    ("Vue3 里 ref 和 reactive 有什么区别？", "code"),
    ("kaip python'e perskaityti csv failą?", "code"),
    ("Four friends each ordered a different drink. Ann didn't order tea. Ben sat next to Cara. Who drank what?",
     "reasoning"),
    ("should i learn python or javascript", "general"),
])
def test_generalised_cases(clf: Classifier, text: str, task: str) -> None:
    assert clf.classify(chat(text)).task == task


def test_negated_code_request_cancels_the_code_evidence() -> None:
    rules = Classifier(options={"learned": False})
    asked = "I wrote a Python script that processes 240 files per minute. How long for 15,000 files?"
    wanted = rules.classify(chat(asked + " I need code for it.")).scores.get("code", 0.0)
    negated = rules.classify(chat(asked + " Just tell me the time, I don't need code.")).scores.get("code", 0.0)
    assert negated <= wanted - 3.0 and negated < 2.5
    assert any(s.detail == "negated(code)" for s in rules.classify(chat("no code please, just the number")).signals)


def test_negated_proof_cancels_the_proof_signal() -> None:
    rules = Classifier(options={"learned": False})
    text = "not looking for a rigorous proof, but why is 0.999... equal to 1? intuitively"
    assert rules.classify(chat(text)).scores.get("reasoning", 0.0) < 1.0
    assert rules.classify(chat("Prove that there are infinitely many primes.")).scores["reasoning"] >= 3.5
    # Round 5 convention: the idea of a proof asked casually ("why can't there be a largest prime?") stays
    # reasoning; the impossibility signal keeps it there once the proof signal is cancelled.
    idea = "not asking for a formal proof, but why are there infinitely many primes? the intuition"
    assert rules.classify(chat(idea)).task == "reasoning"


def test_tool_names_glued_to_cjk_text_are_tech_vocabulary() -> None:
    rules = Classifier(options={"learned": False})
    for text in ("Gitで間違えてコミットしました", "MySQL에서 쿼리를 어떻게 써요?", "Excel里怎么用VLOOKUP查价格？"):
        assert rules.classify(chat(text)).scores.get("code", 0.0) > 0.5, text
