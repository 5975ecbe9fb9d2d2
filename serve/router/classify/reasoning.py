"""Reasoning signals: proofs, puzzles and riddles, multi-constraint problems, "think step by step" hints.

Weights (per hit, last user turn; prose only, from the shared token pass):

====================  =====  ===============================================================
proof                 3.5    prove / proof / show that / 证明 / demuestra / įrodyk ...
puzzle                2.5    puzzle, riddle, knights and knaves, liar, 谜题, acertijo, galvosūkis ...
inference question    2.5    "does it follow", "can we conclude", "is this argument valid"
think hint            2.5    think carefully / explain your reasoning / 仔细想 / piensa bien / pagalvok
constraints           2.0    >= 3 constraint clauses ("sits next to", "is older than", "exactly one")
puzzle framing        2.0    "only one weighing", "how can you tell", "what am I", "without looking"
/think                1.5    Qwen3's soft switch in the prompt
logic                 1.0    therefore, deduce, must be true, premises, fallacy ... (up to 2 distinct)
step by step          1.0    step by step / 一步一步 / paso a paso / žingsnis po žingsnio ...
dilemma / planning    1.0    dilemma, game theory, optimal strategy, trade-offs, "weigh it up", "is it feasible"
negated(proof)        -3.5   "not asking for a formal proof", "不用严格证明": the user wants the idea (maths)
====================  =====  ===============================================================

Tie-breaking puts math before reasoning: "solve step by step: 2x + 3 = 7" is math (equation 2.0 +
solve 1.2 beat step by step 1.0), while a proof scores 3.5 and wins over the equation it contains (proofs are
routed to the thinking model) unless the maths evidence is larger (a LaTeX-heavy exercise).
"""

from __future__ import annotations

from .base import TextFamily
from .extract import Scope
from .features import Lexicon
from .types import Signal, rule

TASK = "reasoning"

_LEXICONS: tuple[tuple[str, float, Lexicon], ...] = (
    ("proof", 3.5, Lexicon(
        words=("prove", "proof", "disprove", "demuestra", "demostrar", "demuestre", "démontrer", "démontrez", "démontre", "montre",
               "montrer", "prouver", "beweise", "beweisen", "докажи", "докажите", "доказать", "dimostra",
               "dimostrare", "demonstre", "induction", "inducción"),
        stems=("įrodyk", "įrodym", "įrodyt", "indukcij"),
        phrases=("show that", "demonstrate that", "prueba que", "pruebe que", "prove que", "montrer que",
                 "zeigen sie", "zeige dass"),
        cjk=("证明", "証明", "증명"))),
    ("puzzle", 2.5, Lexicon(
        words=("puzzle", "puzzles", "riddle", "riddles", "brainteaser", "knights", "knaves", "knave",
               "truthteller", "liar", "liars", "paradox", "syllogism", "acertijo", "acertijos", "adivinanza",
               "adivinanzas", "rompecabezas", "paradoja", "mienten", "miente", "énigme", "devinette", "rätsel",
               "indovinello", "enigma", "charada", "загадка", "загадку", "задачка", "головоломка", "головоломку",
               "لغز", "اللغز",
               "парадокс", "lateral", "sudoku", "nonogram", "kakuro"),
        stems=("galvosū", "mįsl", "meluoj", "melagi", "paradoks", "sąmojing"),
        phrases=("brain teaser", "logic puzzle", "logic problem", "logic question", "logic grid", "who is lying",
                 "who was lying", "always lies", "always tells the truth", "tells the truth", "zebra puzzle",
                 "monty hall", "river crossing", "trick question", "thinking outside the box"),
        cjk=("谜题", "谜语", "脑筋急转弯", "逻辑题", "说谎", "说真话", "悖论", "なぞなぞ", "パズル", "수수께끼", "퍼즐",
             "推理题", "智力题", "嘘つき", "正直者", "거짓말쟁이", "정직한", "过河", "天平"))),
    ("inference question", 2.5, Lexicon(
        phrases=("does it follow", "does this follow", "does that follow", "does it mean that", "can we conclude",
                 "can you conclude", "can one conclude", "can we infer", "can we deduce", "is this argument valid",
                 "is the argument valid", "is this reasoning valid", "is this reasoning correct",
                 "is this argument sound", "logically valid", "es válido este razonamiento", "se puede concluir",
                 "ar šis samprotavimas", "ar galima daryti išvadą", "valid or invalid", "necessarily true",
                 "must be true", "must be false", "which conclusion", "is that logically sound", "is it valid",
                 "is this valid", "ce raisonnement est il valide", "ce raisonnement est-il valide", "folgt daraus",
                 "esse raciocínio é válido", "este razonamiento", "значит ли это", "это рассуждение",
                 "هل هذا الاستدلال", "what is wrong with this reasoning", "what's wrong with this reasoning",
                 "critique this argument", "explain the flaw", "what is the flaw", "what's the flaw",
                 "flaw in this", "peut on conclure", "peut-on conclure", "schluss gültig", "ist dieser schluss",
                 "pode se concluir", "можно ли сделать вывод", "можно ли заключить"),
        cjk=("能否推出", "能不能推出", "是否成立", "逻辑漏洞", "一定成立", "必然成立", "这个推理", "推理成立", "推理有什么问题",
             "この推論", "推論は正しい", "推論の誤り", "이 추론", "추론에서"))),
    ("think hint", 2.5, Lexicon(
        phrases=("think carefully", "think hard", "think deeply", "think it through", "think before you answer",
                 "reason carefully", "reason through", "reason it through", "explain your reasoning",
                 "show your reasoning", "justify your answer", "chain of thought", "let's think",
                 "lets think", "think this through", "walk me through your reasoning", "piensa con cuidado",
                 "piensa bien", "piensa detenidamente", "razona tu respuesta", "razona la respuesta",
                 "razonamiento", "samprotavimą", "samprotavimas", "gerai pagalvok", "pagalvok", "apgalvok", "samprotauk", "pagrįsk",
                 "réfléchis bien", "denk sorgfältig nach", "denk gut nach", "подумай", "рассуди"),
        cjk=("仔细想", "认真思考", "请推理", "推理一下", "深入思考", "推理过程", "说明理由", "说明推理", "よく考え",
             "잘 생각", "仔细分析", "分析利弊", "一步步分析", "理由も説明", "段階的に考え", "따져보고", "따져서"))),
    ("step by step", 1.0, Lexicon(
        phrases=("step by step", "paso a paso", "žingsnis po žingsnio", "žingsniais", "étape par étape",
                 "schritt für schritt", "шаг за шагом", "passo a passo", "passo dopo passo"),
        cjk=("一步一步", "逐步", "分步", "一步步", "ステップバイステップ", "段階的", "단계별"))),
    ("dilemma", 1.0, Lexicon(
        words=("dilemma", "dilemmas", "counterfactual", "dilema", "tradeoffs"),
        stems=("dilem",),
        phrases=("game theory", "optimal strategy", "best strategy", "winning strategy", "prisoner's dilemma",
                 "trolley problem", "teoría de juegos", "under these constraints", "given these constraints",
                 "with these constraints", "minimum number of", "maximum number of", "in what order",
                 "what order should", "is it possible to", "is it always", "guarantee", "trade offs",
                 "weigh it up", "weigh it all up", "weigh up", "weigh the options", "weigh everything",
                 "before you give", "give a recommendation", "give me a recommendation", "pick one",
                 "is that feasible", "is it feasible", "is it realistic", "is this viable", "is it viable"),
        cjk=("困境", "博弈", "最优策略", "怎样安排", "如何安排"))),
    ("puzzle framing", 2.0, Lexicon(
        phrases=("you may only", "you can only", "only one weighing", "only two weighings", "only three weighings",
                 "only one question", "only once", "without looking", "how can you tell", "how can you determine",
                 "how do you determine", "how would you determine", "how can you find out", "how can you guarantee",
                 "how can you measure", "how would you measure", "every label is wrong", "all labels are wrong",
                 "atmatuoti", "who drank what", "who owns what", "who did what", "who is who",
                 "who is telling the truth", "never lies", "which box", "which door", "which switch",
                 "who owns", "who sits", "cómo mides", "cómo puedes medir",
                 "cómo sabes", "cómo determinas", "kaip atmatuoti", "kaip nustatyti", "kaip sužinoti"),
        cjk=("怎样判断", "如何判断", "怎么判断", "只能称一次", "只能问一个"))),
    ("logic", 1.0, Lexicon(
        words=("therefore", "deduce", "infer", "implies", "contradiction", "fallacy", "premise", "premises",
               "necessarily", "logically", "deducir", "premisas", "contradicción", "lógica", "falacia", "logika",
               "syllogisme"),
        stems=("išvad", "prielaid", "prieštar", "logišk"),
        phrases=("cannot both", "exactly one of", "at least one of", "consistent with", "valid argument",
                 "which of the following", "if and only if"),
        cjk=("推断", "推出", "必然", "矛盾", "前提", "结论", "逻辑"))),
)
RULES = (rule("/think", TASK, 1.5, r"(?:^|\s)/think\b"),)
# "Not asking for a formal proof, just the intuition": cancels the proof signal (the user wants the idea: maths).
_PROOF_NEGATION = Lexicon(
    phrases=("not asking for a proof", "not asking for a formal proof", "not asking for a rigorous proof",
             "don't need a proof", "dont need a proof", "do not need a proof", "don't need a formal proof",
             "don't need a rigorous proof", "no proof", "not a proof", "not a formal proof", "not a rigorous proof",
             "without a proof", "without proof", "not looking for a proof", "not looking for a rigorous proof",
             "not looking for a formal proof", "i don't need a proof", "sin demostración", "pas de démonstration",
             "ohne beweis", "без доказательства"),
    cjk=("不用严格证明", "不需要证明", "不要证明", "不用证明", "証明は不要", "증명은 필요 없"))
PROOF_NEGATION_WEIGHT = -3.5

_CONSTRAINTS = Lexicon(
    phrases=("next to", "left of", "right of", "sits between", "sits beside", "sits opposite", "sit between",
             "lives in", "lives on", "lives next", "owns the", "taller than", "shorter than", "older than",
             "younger than", "heavier than", "faster than", "immediately before", "immediately after",
             "not adjacent", "neither", "exactly one", "exactly two", "only one", "no two", "different color",
             "different colour", "didn't", "did not", "a different", "cannot be", "can't be", "must be",
             "is not", "before", "after", "al lado de", "a la izquierda", "a la derecha", "mayor que", "menor que",
             "šalia", "kairėje", "dešinėje", "vyresnis už", "each person", "each of", "each ordered",
             "each has", "each owns", "each chose", "each picked", "each likes", "each drinks", "each wears"),
    cjk=("坐在", "左边", "右边", "旁边", "住在", "只有一个", "恰好", "不在", "不是")
)


class ReasoningSignals(TextFamily):
    """Evidence that the request needs multi-step reasoning rather than recall or generation."""

    name = TASK
    rules = RULES

    def gate(self, label: str, text: str) -> bool:
        """``/think`` needs the literal."""
        return "/think" in text

    def extra(self, scope: Scope, factor: float, prefix: str) -> list[Signal]:
        """Lexicon hits and multi-constraint puzzles (at least three distinct constraint clauses)."""
        f = scope.features
        out: list[Signal] = []
        for label, weight, lex in _LEXICONS:
            if label == "logic":
                hits = lex.find(f, 2)
                if hits:
                    out.append(Signal(self.name, TASK, round(weight * len(hits) * factor, 3),
                                      prefix + "logic(" + ",".join(hits) + ")"))
            elif lex.any(f):
                out.append(Signal(self.name, TASK, round(weight * factor, 3), prefix + label))
        if _PROOF_NEGATION.any(f):
            out.append(Signal(self.name, TASK, round(PROOF_NEGATION_WEIGHT * factor, 3), prefix + "negated(proof)"))
        if f.norm.endswith(" what am i ") or (f.tokens[:2] in (["what", "has"], ["what", "goes"], ["what", "can"])
                                              and "but" in f.words):
            out.append(Signal(self.name, TASK, round(2.0 * factor, 3), prefix + "riddle framing"))
        if len(f.text) >= 80 and len(_CONSTRAINTS.find(f, 3)) >= 3:
            out.append(Signal(self.name, TASK, round(2.0 * factor, 3), prefix + "constraints(3+)"))
        return out
