"""Reasoning signals: proofs, puzzles and riddles, multi-constraint problems, "think step by step" hints.

Weights (per hit, last user turn; prose only, from the shared token pass):

====================  =====  ===============================================================
proof                 3.5    prove / proof / show that / 证明 / demuestra / įrodyk ...
puzzle                2.5    puzzle, riddle, knights and knaves, liar, 谜题, acertijo, galvosūkis ...
inference question    2.5    "does it follow", "can we conclude", "is this argument valid"
think hint            2.5    think carefully / explain your reasoning / 仔细想 / piensa bien / pagalvok
constraints           2.0    >= 3 constraint clauses ("sits next to", "is older than", "exactly one")
puzzle framing        2.0    "only one weighing", "how can you tell", "what am I", "without looking"
sequence puzzle       2.5    "what comes next", "find the pattern", "odd one out", 找规律, qué número sigue ...
impossibility         2.0    "why can't there be a largest ...", "infinitely many primes", "why or why not"
riddle framing        2.0    "what has keys but can't open locks", "o que é, o que é", 越洗越脏, なーんだ ...
ordering clues        2.0    two or more comparisons ("A is taller than B", "B is older than C", 比…高, より…高い)
syllogism             1.5    a universal and a particular quantifier in a short text ("all A are B, some B ...")
/think                1.5    Qwen3's soft switch in the prompt
logic                 1.0    therefore, deduce, must be true, premises, fallacy ... (up to 2 distinct)
step by step          1.0    step by step / 一步一步 / paso a paso / žingsnis po žingsnio ...
dilemma / planning    1.0    dilemma, game theory, optimal strategy, trade-offs, "weigh it up", "is it feasible",
                             "help me decide", "tell me which", 权衡 ...
negated(proof)        -3.5   "not asking for a formal proof", "不用严格证明": the user wants the idea (maths)
====================  =====  ===============================================================

Tie-breaking puts math before reasoning: "solve step by step: 2x + 3 = 7" is math (equation 2.0 +
solve 1.2 beat step by step 1.0), while a proof scores 3.5 and wins over the equation it contains (proofs are
routed to the thinking model) unless the maths evidence is larger (a LaTeX-heavy exercise).
"""

from __future__ import annotations

import re

from .base import TextFamily
from .extract import Scope
from .features import Features, Lexicon
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
                 "is that feasible", "is it feasible", "is it realistic", "is this viable", "is it viable",
                 "choose for me", "help me decide", "which should i pick", "which should i choose", "tell me which",
                 "which would you pick", "which would you choose", "what makes more sense", "is it smarter to",
                 "which makes more sense", "which is actually better", "lay out the trade offs", "then decide",
                 "give me a clear answer", "vale mais a pena", "analisa com calma", "aide moi à trancher",
                 "en pesant", "wäge", "abwägen", "взвесь", "за и против", "pasverk", "analiza los pros",
                 "dime cuál elegirías", "cuál elegirías"),
        cjk=("困境", "博弈", "最优策略", "怎样安排", "如何安排", "权衡", "明确建议", "どちらがいいか", "結論を出して",
             "결론 내려", "따져보고"))),
    ("sequence puzzle", 2.5, Lexicon(
        phrases=("what comes next", "what number comes next", "what comes after", "whats next in", "what's next in",
                 "next number in", "next number of", "next in the sequence", "next in the series",
                 "next one in the", "find the pattern", "spot the pattern", "complete the sequence",
                 "complete the series", "complete the pattern", "continue the pattern", "continue the sequence",
                 "continue the series", "odd one out", "doesn't belong", "does not belong", "replace the question mark",
                 "qué número sigue", "que número sigue", "completa la serie", "completa la secuencia",
                 "próximo número", "proximo numero", "nombre suivant", "le nombre suivant", "nächste zahl",
                 "kommt als nächstes", "следующее число", "какое число следующее", "kitas skaičius",
                 "العدد التالي", "الرقم التالي"),
        cjk=("找规律", "下一个数", "下一个是", "下一项是", "次に来る数", "次に来る", "다음에 올", "다음 숫자", "다음 수는"))),
    ("impossibility", 2.0, Lexicon(
        phrases=("why can't there be", "why cant there be", "why can there not be", "why is there no largest",
                 "why is there no biggest", "why is there no greatest", "why there is no largest",
                 "why there's no largest", "no largest prime", "no biggest prime", "largest prime", "biggest prime",
                 "infinitely many primes", "primes never run out", "why or why not", "argue it",
                 "why is it impossible", "how do we know there are infinitely", "warum kann es keine",
                 "warum gibt es keine größte", "por qué no puede existir", "por qué no existe un",
                 "pourquoi ne peut il pas y avoir", "pourquoi il n y a pas de plus grand", "почему не существует",
                 "por que não existe", "por que não pode existir"),
        cjk=("为什么不存在最大", "不存在最大的", "最大の素数", "무한히 많은 소수", "가장 큰 소수"))),
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

# Riddle framings: "what has keys but can't open locks", "what gets wetter the more it dries", "o que é, o que é".
_RIDDLE_OPENINGS = (["what", "has"], ["what", "goes"], ["what", "can"], ["what", "gets"], ["what", "runs"],
                    ["what", "comes"], ["what", "begins"], ["what", "travels"], ["what", "have"])
_RIDDLE = Lexicon(
    phrases=("o que é o que é", "qué soy", "que soy", "quién soy", "que suis je", "qui suis je", "wer bin ich",
             "was bin ich", "what am i", "who am i if", "the more you take", "the more you have",
             "cosa sono", "chi sono io", "كلما أخذت", "فما هو", "kas aš esu"),
    cjk=("なーんだ", "なあに", "是什么东西", "越洗越", "越用越", "越多越", "越少越", "越大越", "越长越", "什么门", "뭘까",
         "무엇일까"))

# A short question that opens like a riddle and sets up a contradiction: "what has teeth but never eats?".
_RIDDLE_ASK = frozenset(("what", "which", "qu", "que", "qué", "was", "что", "kas", "cosa", "o", "ما", "شيء"))
_RIDDLE_CONTRAST = Lexicon(
    phrases=("but can't", "but cannot", "but can not", "but never", "yet never", "mais ne", "aber nicht", "aber kein", "aber keine", "но не", "но нельзя", "bet ne", "bet nemato",
             "pero no", "pero nunca", "ma non", "mas não", "the more", "plus on", "je mehr", "чем больше",
             "cuanto más", "quanto mais", "kuo daugiau"))
# Ordering clues ("Sarah is taller than Tom. Tom is taller than Uma."): two or more comparisons between people.
_COMPARATIVES = tuple(f" {p} " for p in (
    "taller than", "shorter than", "older than", "younger than", "heavier than", "lighter than", "faster than",
    "slower than", "richer than", "más alto que", "más alta que", "más baja que", "más bajo que",
    "mayor que", "menor que", "plus grand que", "plus âgé que", "plus jeune que", "älter als", "jünger als",
    "größer als", "kleiner als", "старше", "младше", "vyresnis už", "vyresnė už", "jaunesnis už",
    "jaunesnė už", "aukštesnis už", "aukštesnė už", "žemesnis už", "mais alto que", "mais velho que",
    "mais novo que", "أطول من", "أقصر من", "أكبر من", "أصغر من"))
# The comparatives as lexicon phrases, so the shared index finds which occur; one that the tokenizer would
# normalise differently (none today) is still searched for on its own.
_COMPARATIVE_LEX = Lexicon(phrases=[p[1:-1] for p in _COMPARATIVES])
_COMPARATIVE_SET = frozenset(_COMPARATIVES) & _COMPARATIVE_LEX.phrase_set
_COMPARATIVE_TIMES = {p: _COMPARATIVES.count(p) for p in _COMPARATIVE_SET}
_COMPARATIVE_OTHER = tuple(p for p in _COMPARATIVES if p not in _COMPARATIVE_SET)
_CJK_COMPARE_RE = re.compile(r"比.{1,4}?[高矮大小胖瘦重轻快慢早晚]|より(?:背が)?[高低大小若早遅重軽]|보다 ?(?:키가 )?[크작많적빠느무가]")


def _comparisons(f: Features) -> int:
    """How many comparisons between named things the text makes ("A is taller than B", 比...高)."""
    if f.cjk:
        return len(_CJK_COMPARE_RE.findall(f.text))
    norm = f.norm
    n = 0
    if f.hits & _COMPARATIVE_LEX.bit:  # which of them occur: the shared index knows
        for p in _COMPARATIVE_SET & f.found_phrases:
            n += norm.count(p) * _COMPARATIVE_TIMES[p]
    for p in _COMPARATIVE_OTHER:
        if p in norm:
            n += norm.count(p)
    return n


# Syllogisms: a universal and a particular quantifier in one short text ("all bloops are razzies, some ...").
_ALL = Lexicon(words=("all", "every", "todos", "todas", "tous", "toutes", "alle", "все", "всех", "visi", "visos",
                      "كل", "tutti"), cjk=("所有", "凡是", "모든", "すべての"))
_SOME = Lexicon(words=("some", "algunos", "algunas", "certains", "certaines", "einige", "некоторые", "alguns",
                       "algumas", "alcuni", "بعض"), phrases=("kai kurie", "kai kurios"), cjk=("有些", "일부", "一部の"))
_COPULA = frozenset(("are", "is", "son", "sont", "sind", "yra", "são", "sono", "—", "هم"))

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
        if _is_riddle(f):
            out.append(Signal(self.name, TASK, round(2.0 * factor, 3), prefix + "riddle framing"))
        if len(f.text) <= 400 and _ALL.any(f) and _SOME.any(f) and (f.cjk or not _COPULA.isdisjoint(f.words)
                                                                     or not f.text.isascii()):
            out.append(Signal(self.name, TASK, round(1.5 * factor, 3), prefix + "syllogism"))
        if len(f.text) <= 600 and _comparisons(f) >= 2:
            out.append(Signal(self.name, TASK, round(2.0 * factor, 3), prefix + "ordering clues"))
        if len(f.text) >= 80 and len(_CONSTRAINTS.find(f, 3)) >= 3:
            out.append(Signal(self.name, TASK, round(2.0 * factor, 3), prefix + "constraints(3+)"))
        return out


def _is_riddle(f: Features) -> bool:
    """Riddle framings: "what am I", "o que é, o que é", "what has keys but can't open locks"."""
    if f.norm.endswith(" what am i ") or _RIDDLE.any(f):
        return True
    if f.tokens[:2] in _RIDDLE_OPENINGS and ("but" in f.words or f.has_phrase("the more")):
        return True
    return len(f.text) <= 120 and bool(f.tokens) and f.tokens[0] in _RIDDLE_ASK and _RIDDLE_CONTRAST.any(f)
