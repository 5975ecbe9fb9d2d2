"""Math signals: LaTeX, equations, arithmetic, maths vocabulary, word problems (multilingual).

Structural math rules scan *prose* (fenced code removed), so a formula inside a code block is evidence for
code, not maths; vocabulary comes from the shared token pass (:mod:`.features`). Weights (last user turn):

==================  =====  ===================================================================
latex               2.5    ``\\frac``, ``\\int``, ``$x^2$`` ...
equation            2.0    ``3x + 5 = 20``, ``x^2``, ``f(x) =``, ``sin(``, ``∫``
answer request      2.0    "just give me the number", "只要答案", "tik atsakymą"
word problem        1.5    a quantity question ("how many", "cuántos", "kiek", "多少") + >= 2 numbers,
                           or >= 2 numbers + a rate/percent/units cue + a question
term(strong)        1.5    integral, derivative, probability, eigenvalue, 方程, ecuación, lygtis ...
                           (up to 2 distinct)
arithmetic          1.2    ``17 * 23``, ``12 - 5``, ``3 ÷ 4``
imperative(solve)   1.2    solve / calculate / compute / convert / resuelve / apskaičiuok / 计算 ...
term(moderate)      0.7    triangle, average, fraction, percent ... (up to 3 distinct)
numbers+units       0.6    ``60 km/h``, ``5 kg``, ``20 %``
topic(math)         0.3    "math", "maths": alone never enough (casual chat about maths is general)
==================  =====  ===================================================================
"""

from __future__ import annotations

import re

from .base import TextFamily
from .extract import Scope
from .features import Features, Lexicon
from .types import Signal, rule

TASK = "math"
PROSE_CHARS = 2048
# Word problems are short: a long paste with numbers and a question is usually something else.
WORD_PROBLEM_CHARS = 1200
LEXICAL_CAP = 3.0

_STRONG = Lexicon(
    words=("anagram", "anagrams", "anagramas", "standardabweichung", "integral", "integrate", "derivative", "differentiate", "antiderivative", "eigenvalue",
           "eigenvector", "determinant", "polynomial", "quadratic", "logarithm", "probability", "variance",
           "factorial", "permutation", "combinatorics", "binomial", "matrix", "matrices", "equation",
           "inequality", "inequalities", "hypotenuse", "pythagorean", "trigonometry", "modulo", "gcd", "lcm",
           "converge", "converges", "divergent", "asymptote", "logarithmic", "exponential", "sine", "cosine",
           "arithmetic", "geometric", "parabola", "hyperbola", "ellipse", "radians", "congruent", "diophantine", "combinations",
           "ecuación", "ecuaciones", "derivada", "integral", "probabilidad", "polinomio", "logaritmo",
           "hipotenusa", "desigualdad", "equação", "probabilidade", "equazione", "derivata", "probabilità",
           "équation", "intégrale", "dérivée", "probabilité", "gleichung", "ableitung", "wahrscheinlichkeit"),
    stems=("lygt", "integral", "išvestin", "tikimyb", "matric", "daugianar", "logaritm", "įžambin",
           "nelygyb", "kvadratin", "уравнен", "интеграл", "производн", "вероятн", "матриц", "логарифм",
           "derivad", "ecuaci", "probabil"),
    phrases=("solve for", "expected value", "standard deviation", "prime factorization", "prime factorisation",
             "greatest common divisor", "least common multiple", "taylor series", "limit of", "square root",
             "cube root", "simplify the expression", "slope of", "system of equations", "log base",
             "arithmetic sequence", "geometric series", "raíz cuadrada", "máximo común divisor",
             "common denominator", "confidence interval", "normal distribution", "z score", "t test",
             "unit conversion", "convert to", "in terms of", "compound interest", "simple interest",
             "desviación típica", "desviación estándar", "écart type", "desvio padrão", "стандартное отклонение",
             "standartinis nuokrypis", "الانحراف المعياري", "expected number", "how many ways", "in how many ways",
             "de combien de façons", "wie viele möglichkeiten", "quantas maneiras", "сколькими способами",
             "kiek būdų"),
    cjk=("方程", "积分", "導数", "导数", "微分", "概率", "几率", "期望值", "方差", "矩阵", "行列式", "特征值", "多项式", "对数",
         "勾股", "阶乘", "最大公约数", "最小公倍数", "不等式", "平方根", "方程式", "確率", "積分", "방정식", "적분", "미분",
         "확률", "행렬", "极限", "排列组合", "标准差", "標準偏差", "표준편차", "경우의 수", "何通り", "多少种", "几种"),
)
_MODERATE = Lexicon(
    words=("triangle", "circle", "radius", "diameter", "circumference", "perimeter", "area", "twice",
           "volume", "angle", "fraction", "percent", "percentage", "average", "median", "ratio",
           "proportion", "remainder", "divisible", "prime", "geometry", "theorem",
           "sequence", "exponent", "vector", "digits", "digit", "rectangle", "cube",
           "sphere", "cylinder", "cone", "polygon", "calculus", "algebra", "integer", "integers", "tangent",
           "vertex", "hexagon", "diagonal", "speed", "velocity", "distance",
           "approximately",
           "decimal", "decimals", "multiply", "divide", "divided", "squared", "cubed",
           "odds", "chance", "chances", "dice", "coin", "coins", "deck", "marbles", "balls",
           "triángulo", "área", "perímetro", "volumen", "porcentaje", "promedio", "media", "fracción",
           "velocidad", "distancia", "pourcentage", "moyenne", "dreieck", "fläche", "prozent",
           "durchschnitt", "percentuale", "triangolo", "média", "треугольник", "площадь", "процент", "среднее",
           "fahrenheit", "celsius", "фаренгейту", "фаренгейта", "цельсиях", "цельсия", "فهرنهايت", "مئوية",
           "discount", "rabatt", "descuento", "desconto", "remise", "скидка", "скидкой", "nuolaida", "nuolaidą"),
    stems=("farenheit", "celsij", "trikamp", "plotas", "plotą", "perimetr", "tūris", "tūrį", "spindul", "trupmen", "procent",
           "vidurk", "pirmin", "skaiči", "aritmet", "geometr", "greiti", "atstum", "kvadrat", "stačiakamp",
           "apskritim", "площад", "процент", "скорост"),
    phrases=("half of", "volume of", "sum of", "product of", "prime number", "prime numbers", "graph of",
             "function f", "interest rate", "per hour", "per day", "per cent", "how many ways", "at random",
             "números primos", "por ciento"),
    cjk=("三角形", "面积", "周长", "体积", "半径", "直径", "圆", "质数", "素数", "分数", "百分之", "百分比", "平均", "比例",
         "数列", "几何", "代数", "余数", "面積", "넓이", "평균", "速度", "距离", "利息", "折", "倍", "华氏", "摄氏", "華氏",
         "摂氏", "화씨", "섭씨", "부피", "体積", "注满", "进水管", "打折", "折扣", "原价", "割引", "할인"),
)
_IMPERATIVE = Lexicon(
    words=("solve", "calculate", "compute", "evaluate", "simplify", "factor", "factorise", "factorize",
           "expand", "convert", "estimate", "resuelve", "resolver", "calcula", "calcular", "calcule",
           "simplifica", "resolva", "risolvi", "calcola", "résous", "résoudre", "calculez", "berechne", "löse",
           "реши", "решите", "вычисли", "посчитай", "найдите", "найди", "rechne", "convierte"),
    stems=("išspręs", "apskaiči", "supapras", "suskaiči", "raskite", "spręsk", "paskaiči", "konvertuo", "perskaiči"),
    cjk=("求解", "解方程", "算一下", "求出", "求值", "化简", "計算", "求め", "계산", "구하", "换算", "算出", "等于多少"),
)
_QUANTITY = Lexicon(
    words=("cuántos", "cuántas", "cuánto", "cuánta", "cuantos", "cuanto", "kiek", "combien", "сколько",
           "quantos", "quantas", "quanto", "quanti", "ile"),
    phrases=("how many", "how much", "how long", "how far", "how fast", "how old", "how tall", "how heavy",
             "what is the total", "what's the total", "what is the sum", "what is the average", "what is the mean",
             "what is the probability", "what are the chances", "what are the odds", "what is the chance",
             "what is the area", "what is the volume", "what is the speed", "what is the value",
             "what is the ratio", "what is the remainder", "what is the perimeter", "what is the distance",
             "what is the percentage", "what percentage", "what percent", "what fraction", "what number",
             "what is it worth", "how much is", "what will it be worth", "find the", "calculate the",
             "work out", "figure out how", "what is the probability", "what's the probability",
             "wie viel", "wie viele", "wie lange", "cuál es el valor", "cuál es la probabilidad", "koks yra",
             "kokia yra", "kokia tikimybė", "wie teuer", "was war der", "wie hoch ist", "wie hoch war",
             "quel était", "quel est le prix", "cuál era", "cuál es el precio", "qual era", "qual vai ser",
             "qual será", "quanto era", "quanto custa", "каков", "какова", "какой была", "koks buvo",
             "kokia buvo", "what was the original", "what is the original"),
    cjk=("多少", "几个", "几只", "几天", "几岁", "几分钟", "几小时", "几次", "几元", "几年", "几米", "几块", "几人", "几本",
         "是几", "何個", "いくつ", "몇", "얼마", "几"),
)
_ANSWER = Lexicon(
    phrases=("just the number", "just the answer", "only the number", "only the answer", "just want the number",
             "just need the number", "just tell me the number", "just give me the number",
             "solo quiero el resultado", "solo el resultado", "dime solo el resultado", "tik atsakymą",
             "pasakyk tik atsakymą", "final answer", "numeric answer", "exact value", "round to",
             "rounded to", "to two decimal places", "decimal places", "by hand", "à la main", "a mano",
             "von hand", "per hand", "à mão", "вручную", "ranka"),
    cjk=("直接告诉我答案", "只要答案", "保留两位小数", "答案是多少", "手算", "手计算", "手計算", "손으로 계산"),
)
_TOPIC = Lexicon(words=("math", "maths", "mathematics", "matemáticas", "matemática", "matematika", "matematikos",
                        "математика", "математику", "mathe", "mathématiques"), cjk=("数学",))
_UNITS = frozenset((
    "km", "kg", "cm", "mm", "m", "g", "mg", "ml", "l", "mph", "kmh", "hours", "hour", "hrs", "minutes", "minute",
    "mins", "seconds", "second", "meters", "metres", "meter", "metre", "miles", "mile", "liters", "litres",
    "liter", "litre", "dollars", "dollar", "euros", "euro", "eur", "usd", "yuan", "feet", "ft", "inches", "inch",
    "pounds", "lbs", "lb", "degrees", "kilometers", "kilometres", "grams", "kilograms", "ounces", "oz", "gallons",
    "valandas", "valandų", "minutes", "metrų", "kilometrų", "eurų", "litrų", "horas", "minutos", "metros",
    "kilómetros", "litros", "pesos", "days", "weeks", "months", "years", "workers", "people", "apples",
    "percent", "cents", "km/h", "m/s", "°c", "°f", "kw", "kwh", "w", "v", "mb", "gb", "tb",
))
# "from 80 to 92, what % increase is that": a percentage change asked for ("%" is not a token, so it is checked
# in the text next to a change word and two numbers).
_PERCENT_CHANGE = Lexicon(
    phrases=("percent increase", "percentage increase", "percent decrease", "percentage decrease", "percent change",
             "percentage change", "percent growth", "percentage growth", "by how many percent", "by what percent",
             "by what percentage", "aumento percentual", "aumento porcentual", "pourcentage d augmentation",
             "на сколько процентов", "kiek procentų"),
    cjk=("百分之几", "涨了百分", "增长了百分", "增长率", "何パーセント", "몇 퍼센트", "몇 %"))
_CHANGE_WORDS = frozenset(("increase", "decrease", "growth", "change", "rise", "drop", "discount", "off", "went",
                           "grew", "fell", "dropped", "rose", "up", "down"))
_NUMBER_WORDS = frozenset(("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                           "twelve", "twenty", "hundred", "thousand", "dozen", "twice", "half", "du", "dvi",
                           "trys", "keturi", "penki", "dos", "tres", "cuatro", "cinco", "diez"))

RULES_PROSE = (
    rule("latex", TASK, 2.5,
         r"\\(?:frac|d?int|sum|sqrt|lim|prod|partial|infty|alpha|beta|theta|pi|cdot|times|leq|geq|neq|binom|"
         r"mathbb|mathrm|log|ln|sin|cos|tan|left|right|over)\b|\$[^$\n'\x22\[\]{};]{1,80}[\^_\\][^$\n'\x22\[\];]{0,80}"
         r"\$|\\\(|\\\[", cased=True),
)
# One small regex per construct, each starting with a literal or a character set, so the regex engine can
# skip ahead quickly (a single alternation of branches would be tried at every position).
_EQUATION_RES = tuple(re.compile(p) for p in (
    r"\d[abcnxyz]\s?[-+=*/^)<>²³]", r"[\^*]\*?\s?\d", r"[²³∫∑√∞≤≥≠π∂]", r"[fgh]\s?\([a-z]\)\s?=",
    r"[xyzn]\s?[-+]\s?\d+\s?=", r"y\s?=\s?-?[\d.]*\s?x\b", r"log_?\d", r"(?:sin|cos|tan|sqrt|ln)\s?\(",
    r"equals\s+-?\d", r"=\s?-?\d+\s?[xyz]\b", r"\)\s?(?:[²³]|\^\s?\d)"))
_EQUATION_GATES = ("=", "^", "**", "²", "³", "∫", "∑", "√", "∞", "≤", "≥", "≠", "π", "∂", "log", "sin(", "cos(",
                   "tan(", "sqrt(", "ln(")
# One regex each for "any of these characters / gate strings occurs" (a single C-level scan).
_OPERATOR_RE = re.compile("[" + re.escape("=^*+/×÷²³∫∑√∞≤≥≠π∂(-%?") + "]")
_DIGIT_RE = re.compile(r"\d|[∫∑√∞π∂]")
_EQUATION_GATE_RE = re.compile("|".join(map(re.escape, _EQUATION_GATES)))
_CJK_SOLVE_RE = re.compile(r"求\s*\d|求.{0,24}?(?:的和|的值|的积|面积|概率|最小值|最大值|第\s?\d+\s?项|通项|多少)")
# Every branch but one starts with a digit: factored out, the engine rejects most positions at once.
_ARITH_RE = re.compile(r"\d(?:\s?%\s?of\s\$?\d|\s?/\s?\d+\s?\?|\s?[+*×÷^]\s?\(?-?\d|\s[-/]\s\(?\d|\s?=\s?\?"
                       r"|\s?\*\*\s?\d)|what is -?\d")
_UNIT_NUM_RE = re.compile(r"\d\s?(?:%|°|km/h|m/s|\$|€)|[$€£¥]\s?\d|\d\s?(?:公里|小时|分钟|米|千克|个|只|天|元|人)")
_RATE_CUES = frozenset(("per", "each", "every", "rate", "percent", "total", "remaining", "left", "rounded",
                        "chance", "odds", "probability", "average", "faster", "slower", "more", "less",
                        "times", "cada", "por", "kiekvien", "per", "après", "after"))


class MathSignals(TextFamily):
    """Evidence that the request wants a mathematical answer."""

    name = TASK
    prose_rules = RULES_PROSE

    def gate(self, label: str, text: str) -> bool:
        """LaTeX needs a backslash or a dollar sign."""
        return "\\" in text or "$" in text

    def extra(self, scope: Scope, factor: float, prefix: str) -> list[Signal]:
        """Equations, arithmetic, vocabulary and word problems."""
        found = _structural(scope.features.text) + _lexical(scope.features, scope.prose[:PROSE_CHARS])
        return [Signal(self.name, TASK, round(w * factor, 3), prefix + label) for label, w in found]


def _structural(prose: str) -> list[tuple[str, float]]:
    """Equations and arithmetic in the focus text (already lower-cased; bounded to head + tail)."""
    out: list[tuple[str, float]] = []
    if _OPERATOR_RE.search(prose) is None or _DIGIT_RE.search(prose) is None:
        return out
    low = prose
    if _EQUATION_GATE_RE.search(low) is not None and any(rx.search(low) for rx in _EQUATION_RES):
        out.append(("equation", 2.0))
    if _ARITH_RE.search(low):
        out.append(("arithmetic", 1.2))
    return out


def _lexical(f: Features, prose: str) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    if f.cjk and _CJK_SOLVE_RE.search(f.text):
        out.append(("imperative(solve)", 1.2))
    strong = _STRONG.find(f, 2)
    if strong:
        out.append(("term(" + ",".join(strong) + ")", 1.5 * len(strong)))
    moderate = _MODERATE.find(f, 3)
    if moderate:
        out.append(("term(" + ",".join(moderate) + ")", round(0.5 * len(moderate), 3)))
    if _IMPERATIVE.any(f) and out[:1] != [("imperative(solve)", 1.2)]:
        out.append(("imperative(solve)", 1.2))
    if _ANSWER.any(f):
        out.append(("answer request", 2.0))
    if _TOPIC.any(f):
        out.append(("topic(math)", 0.3))
    if _PERCENT_CHANGE.any(f) or ("%" in f.text and not _CHANGE_WORDS.isdisjoint(f.words) and f.numbers >= 2):
        out.append(("percent change", 1.5))
    if not f.numbers:
        return _cap(out)
    numbers = f.numbers + len(_NUMBER_WORDS & f.words)
    toks = f.tokens
    units = any(t[0].isdigit() and i + 1 < len(toks) and toks[i + 1] in _UNITS for i, t in enumerate(toks)) \
        or _UNIT_NUM_RE.search(f.text) is not None
    if units:
        out.append(("numbers+units", 0.6))
    if len(prose) <= WORD_PROBLEM_CHARS:
        quantity = _QUANTITY.any(f)
        question = quantity or "?" in f.text or "？" in f.text
        if (numbers >= 2 and question and (quantity or (units and not _RATE_CUES.isdisjoint(f.words)))) or (
                numbers == 1 and units and quantity):
            out.append(("word problem", 1.5))
    return _cap(out)


def _cap(found: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Vocabulary is topic, not intent: its total is capped at :data:`LEXICAL_CAP`."""
    vocab = [(label, w) for label, w in found if label.startswith(("term", "imperative", "topic"))]
    total = sum(w for _, w in vocab)
    if total <= LEXICAL_CAP:
        return found
    scale = LEXICAL_CAP / total
    return [(label, round(w * scale, 3)) if (label, w) in vocab else (label, w) for label, w in found]
