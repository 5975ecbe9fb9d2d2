"""Reasoning signals: proofs, puzzles and riddles, multi-constraint problems, "think step by step" hints.

Weights (per hit, last user turn; prose only):

================  =====  ===============================================================
proof             2.5    prove / proof / show that / 证明 / demuestra / įrodyk ...
puzzle            2.5    puzzle, riddle, knights and knaves, liar, 谜题, acertijo, galvosūkis ...
constraints       2.0    >= 3 constraint clauses ("sits next to", "is older than", "exactly one")
think hint        1.5    think carefully / explain your reasoning / 仔细想 / piensa bien / pagalvok
/think            1.5    Qwen3's soft switch in the prompt
logic             1.0    therefore, deduce, must be true, premises, fallacy ... (up to 2 distinct)
step by step      1.0    step by step / 一步一步 / paso a paso / žingsnis po žingsnio ...
dilemma           1.0    dilemma, trade-off analysis, game theory, optimal strategy
================  =====  ===============================================================

Tie-breaking puts math before reasoning: "solve step by step: 2x + 3 = 7" is math (equation 2.0 +
solve 1.2 beat step by step 1.0), while a proof scores 2.5 and usually wins over the maths vocabulary it
mentions (proofs are routed to the thinking model).
"""

from __future__ import annotations

import re

from .base import TextFamily
from .extract import Scope
from .types import Signal, anywhere, rule, stems, words

TASK = "reasoning"

RULES_PROSE = (
    rule("proof", TASK, 2.5,
         words(r"prove", r"proof", r"disprove", r"show that", r"demonstrate that", r"demuestra", r"demostrar",
               r"demuestre", r"prueba que", r"d[ée]montre[rz]?", r"prouve[rz]?", r"beweise", r"beweisen",
               r"докажи", r"докажите", r"dimostra", r"dimostrare", r"prove que", r"demonstre")
         + "|" + stems(r"įrodyk", r"įrodym", r"įrodyti") + "|" + anywhere(r"证明", r"証明", r"증명")),
    rule("puzzle", TASK, 2.5,
         words(r"puzzles?", r"riddles?", r"brain ?teasers?", r"logic (?:puzzle|problem|question|grid)s?",
               r"knights? and knaves", r"truth-?tellers?", r"liars?", r"who (?:is|was) lying", r"always lies",
               r"always tells the truth", r"zebra puzzle", r"paradox", r"syllogisms?", r"acertijos?",
               r"adivinanzas?", r"rompecabezas", r"paradoja", r"mienten?", r"[ée]nigme", r"devinette",
               r"rätsel", r"indovinello", r"enigma", r"charada", r"загадк\w*", r"головоломк\w*", r"парадокс")
         + "|" + stems(r"galvosūk", r"mįsl", r"meluoj", r"melagi", r"paradoks", r"sąmojing")
         + "|" + anywhere(r"谜题", r"谜语", r"脑筋急转弯", r"逻辑题", r"说谎", r"说真话", r"悖论", r"なぞなぞ", r"パズル",
                          r"수수께끼", r"퍼즐")),
    rule("think hint", TASK, 1.5,
         r"think (?:carefully|hard|deeply|it through|before (?:you )?answer)|reason (?:carefully|through it)|"
         r"explain your reasoning|show your reasoning|justify your answer|chain of thought|let'?s think|"
         r"piensa (?:con cuidado|bien|detenidamente)|razona (?:tu|la) respuesta|razonamiento|"
         r"gerai pagalvok|pagalvok|apgalvok|samprotauk|pagrįsk|réfléchis|denk (?:sorgfältig|gut) nach|"
         r"подумай|рассужда|よく考え|잘 생각|" + anywhere(r"仔细想", r"认真思考", r"请推理", r"推理一下", r"深入思考")),
    rule("step by step", TASK, 1.0,
         r"step[- ]by[- ]step|paso a paso|žingsnis po žingsnio|žingsniais|étape par étape|schritt für schritt|"
         r"шаг за шагом|passo a passo|passo dopo passo|"
         + anywhere(r"一步一步", r"逐步", r"分步", r"一步步", r"ステップバイステップ", r"段階的", r"단계별")),
    rule("logic({})", TASK, 1.0,
         words(r"therefore", r"deduce", r"infer", r"implies", r"must be true", r"cannot both", r"exactly one of",
               r"at least one of", r"contradiction", r"consistent with", r"valid argument", r"fallacy",
               r"premises?", r"which of the following", r"necessarily", r"logically", r"if and only if",
               r"deducir", r"premisas?", r"contradicci[oó]n", r"l[oó]gica", r"falacia", r"logika")
         + "|" + stems(r"išvad", r"prielaid", r"prieštar", r"logišk")
         + "|" + anywhere(r"推断", r"推出", r"必然", r"矛盾", r"前提", r"结论", r"逻辑"),
         max_hits=2, vocab=(r"therefore", r"deduce", r"infer", r"implies", r"fallacy", r"premises?",
                            r"logically", r"contradiction")),
    rule("dilemma", TASK, 1.0,
         words(r"dilemmas?", r"game theory", r"optimal strategy", r"prisoner'?s dilemma", r"counterfactual",
               r"trolley problem", r"dilema", r"dilema del prisionero", r"teoría de juegos")
         + "|" + stems(r"dilem") + "|" + anywhere(r"困境", r"博弈")),
)
RULES = (rule("/think", TASK, 1.5, r"(?:^|\s)/think\b"),)

_CONSTRAINT_RE = re.compile(
    r"next to|left of|right of|sits? (?:between|beside|opposite)|lives? (?:in|on|next)|owns? the|"
    r"(?:taller|shorter|older|younger|heavier|faster) than|immediately (?:before|after)|not (?:the|adjacent)|"
    r"either \w+ or|neither|exactly (?:one|two)|only one|each (?:person|of)|no two|different (?:color|colour)|"
    r"al lado de|a la izquierda|a la derecha|mayor que|menor que|šalia|kairėje|dešinėje|vyresnis už|"
    r"坐在|左边|右边|旁边|住在|比\w{0,4}高|只有一个|恰好")


class ReasoningSignals(TextFamily):
    """Evidence that the request needs multi-step reasoning rather than recall or generation."""

    name = TASK
    rules = RULES
    prose_rules = RULES_PROSE

    def extra(self, scope: Scope, factor: float, prefix: str) -> list[Signal]:
        """Multi-constraint puzzles: at least three distinct constraint clauses."""
        text = scope.prose_lowered
        if len(text) < 80:
            return []
        seen: set[str] = set()
        for m in _CONSTRAINT_RE.finditer(text):
            seen.add(m.group(0))
            if len(seen) >= 3:
                return [Signal(self.name, TASK, round(2.0 * factor, 3), prefix + "constraints(3+)")]
        return []
