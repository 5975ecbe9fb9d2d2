"""Math signals: LaTeX, equations, arithmetic, maths vocabulary, word problems (multilingual).

All math rules scan *prose* (fenced code removed), so a formula inside a code block is evidence for code,
not maths. Weights (per hit, last user turn):

==================  =====  ===================================================================
latex               2.5    ``\\frac``, ``\\int``, ``$x^2$`` ...
equation            2.0    ``3x + 5 = 20``, ``x^2``, ``f(x) =``, ``y = 2x``
word problem        1.5    a quantity question ("how many", "cuántos", "kiek", "多少") + >= 2 numbers
term(strong)        1.5    integral, derivative, probability, eigenvalue, 方程, ecuación, lygtis ...
                           (up to 2 distinct)
arithmetic          1.2    ``17 * 23``, ``12 - 5``, ``3 ÷ 4``
imperative(solve)   1.2    solve / calculate / compute / resuelve / apskaičiuok / 计算 ...
term(moderate)      0.7    triangle, average, fraction, percent ... (up to 3 distinct)
numbers+units       0.6    ``60 km/h``, ``5 kg``, ``20 %``
topic(math)         0.3    "math", "maths": alone never enough (casual chat about maths is general)
==================  =====  ===================================================================
"""

from __future__ import annotations

import re

from .base import TextFamily
from .extract import Scope
from .types import Signal, anywhere, rule, stems, words

TASK = "math"

_STRONG = (
    # en
    r"solve for", r"integral", r"integrate", r"derivative", r"differentiate", r"antiderivative", r"eigen\w+",
    r"determinant", r"polynomials?", r"quadratic", r"logarithms?", r"probability", r"expected value",
    r"variance", r"standard deviation", r"factorial", r"permutations?", r"binomial", r"matri(?:x|ces)",
    r"equations?", r"inequalit(?:y|ies)", r"hypotenuse", r"pythagorean", r"trigonometr\w+", r"modulo",
    r"prime factori[sz]ation", r"greatest common divisor", r"least common multiple", r"gcd", r"lcm",
    r"arithmetic (?:sequence|progression)", r"geometric (?:series|sequence|progression)", r"taylor series",
    r"converges?", r"limit of", r"square root", r"cube root", r"simplify the expression", r"vertex form",
    r"slope of", r"system of equations",
    # es / pt / it / fr / de
    r"ecuaci[oó]n(?:es)?", r"derivada", r"probabilidad(?:es)?", r"polinomio", r"logaritmo", r"hipotenusa",
    r"ra[ií]z cuadrada", r"desigualdad", r"m[aá]ximo com[uú]n divisor", r"equa[çc][aã]o", r"probabilidade",
    r"equazione", r"derivata", r"probabilit[àa]", r"[ée]quation", r"int[ée]grale", r"d[ée]riv[ée]e",
    r"probabilit[ée]", r"gleichung", r"ableitung", r"wahrscheinlichkeit",
)
_STRONG_STEMS = (
    # lt (inflected: match stems)
    r"lygt(?:is|į|ies|ys|imi|ų|ims|yse)", r"integral", r"išvestin", r"tikimyb", r"matric", r"daugianar",
    r"logaritm", r"įžambin", r"nelygyb", r"kvadratin(?:ė|ę|ės) šakn", r"kvadratin(?:ė|ę|ės|ių) lygt",
    # ru
    r"уравнени", r"интеграл", r"производн", r"вероятност", r"матриц", r"логарифм",
)
_STRONG_CJK = (
    r"方程", r"积分", r"導数|导数", r"微分", r"概率", r"几率", r"期望值", r"方差", r"矩阵", r"行列式", r"特征值", r"多项式",
    r"对数", r"勾股", r"最大公约数", r"最小公倍数", r"不等式", r"平方根", r"方程式", r"確率", r"積分", r"방정식",
    r"적분", r"미분", r"확률", r"행렬",
)
_MODERATE = (
    r"triangles?", r"circles?", r"radius", r"diameter", r"circumference", r"perimeter", r"area of",
    r"volume of", r"angles?", r"fractions?", r"percent(?:age)?", r"average", r"median", r"ratio",
    r"proportion", r"compound interest", r"interest rate", r"sum of", r"product of", r"remainder",
    r"divisible", r"prime numbers?", r"algebra(?:ic)?", r"geometry", r"calculus", r"theorem", r"sequence",
    r"exponents?", r"vectors?", r"graph of", r"function f", r"digits?", r"odd|even numbers?",
    # es / pt / it / fr / de
    r"tri[aá]ngulo", r"[aá]rea", r"per[ií]metro", r"volumen", r"porcentaje", r"promedio", r"media",
    r"fracci[oó]n", r"n[uú]meros? primos?", r"volume", r"pourcentage", r"moyenne", r"dreieck", r"fläche",
    r"prozent", r"durchschnitt", r"percentuale", r"triangolo",
)
_MODERATE_STEMS = (
    r"trikamp", r"plot(?:as|ą|o|ui)\b", r"perimetr", r"tūr(?:is|į|io)\b", r"spindul", r"trupmen", r"procent",
    r"vidurk", r"pirmin(?:is|iai|ių) skaič", r"skaičiu", r"aritmetin", r"geometr", r"треугольник",
    r"площад", r"процент", r"среднее",
)
_MODERATE_CJK = (
    r"三角形", r"面积", r"周长", r"体积", r"半径", r"直径", r"圆", r"质数", r"素数", r"分数", r"百分之", r"百分比",
    r"平均", r"比例", r"数列", r"几何", r"代数", r"函数f", r"余数", r"面積", r"넓이", r"평균",
)

_QUANTITY = (
    r"how (?:many|much|long|far|fast|old|tall|heavy)|what (?:is|was|will be|are) the (?:total|sum|product|"
    r"average|mean|probability|area|volume|speed|cost|price|value|ratio|remainder|perimeter|difference|"
    r"distance|percentage|number)|(?:find|calculate|compute|determine|work out|figure out) (?:the|how|x|y|n)\b|"
    r"what is \d|cu[aá]nt[oa]s?|cu[aá]l es (?:el|la) (?:valor|[aá]rea|probabilidad|suma|total)|kiek|koks yra|"
    r"kokia yra|combien|wie (?:viele?|lange|weit)|сколько|quant[oa]s?|多少|几个|几只|几天|几岁|是几|何個|いくつ|"
    r"몇|얼마"
)
_IMPERATIVE = (
    words(r"solve", r"calculate", r"compute", r"evaluate", r"simplify", r"factor(?:i[sz]e)?", r"expand",
          r"resuelve", r"resolver", r"calcula", r"calcular", r"calcule", r"simplifica", r"resolva", r"risolvi",
          r"calcola", r"r[ée]sous", r"r[ée]soudre", r"calculez", r"berechne", r"löse", r"реши", r"решите",
          r"вычисли", r"посчитай", r"найдите")
    + "|" + stems(r"išspręsk", r"apskaičiuok", r"suskaičiuok", r"raskite", r"spręsk")
    + "|" + anywhere(r"求解", r"解方程", r"计算", r"算一下", r"求出", r"求值", r"化简", r"計算", r"求め", r"계산", r"구하")
)

RULES_PROSE = (
    rule("latex", TASK, 2.5,
         r"\\(?:frac|d?int|sum|sqrt|lim|prod|partial|infty|alpha|beta|theta|pi|cdot|times|leq|geq|neq|binom|"
         r"mathbb|mathrm|log|ln|sin|cos|tan|left|right|over)\b|\$[^$\n]{1,80}[\^_=\\][^$\n]{0,80}\$|\\\(|\\\[",
         cased=True),
    rule("equation", TASK, 2.0,
         r"\d\s*[a-z]\b[^=\n]{0,40}=|(?<![\w])[a-z]\s*(?:\^|\*\*)\s*\d|(?<![\w])[a-z][²³]|"
         r"(?<![\w])[a-z]\s*[+\-]\s*\d+\s*=\s*-?\d|=\s*-?\d+\s*[a-z](?![\w])|\b[fgh]\s*\(\s*[a-z]\s*\)\s*="
         r"|(?<![\w])y\s*=\s*-?\d*\.?\d*\s*x|[∫∑√∞≤≥≠π∂]|\blog_?\d|\bsin\s*\(|\bcos\s*\("),
    rule("arithmetic", TASK, 1.2, r"\d\s*[+*×÷^]\s*\(?-?\d|\d\s+[-/]\s+\(?\d|\d\s*=\s*\?|\d\s*\*\*\s*\d"),
    rule("imperative(solve)", TASK, 1.2, _IMPERATIVE),
    rule("term({})", TASK, 1.5, words(*_STRONG) + "|" + stems(*_STRONG_STEMS) + "|" + anywhere(*_STRONG_CJK),
         max_hits=2, vocab=_STRONG + _STRONG_STEMS + _STRONG_CJK),
    rule("term({})", TASK, 0.7,
         words(*_MODERATE) + "|" + stems(*_MODERATE_STEMS) + "|" + anywhere(*_MODERATE_CJK),
         max_hits=3, vocab=_MODERATE + _MODERATE_STEMS + _MODERATE_CJK),
    rule("numbers+units", TASK, 0.6,
         r"\d(?:[.,]\d+)?\s*(?:%|km/h|mph|m/s|km|kg|cm|mm|m²|m2|ml|hours?|hrs?|minutes?|mins?|seconds?|meters?|"
         r"metres?|miles?|liters?|litres?|dollars?|euros?|€|yuan|元|feet|ft|inches?|pounds?|lbs?|°|degrees?|"
         r"valand\w*|minu\w*|metr\w*|kilometr\w*|eur\w*|litr\w*|horas?|minutos?|metros?|kil[oó]metros?|"
         r"公里|小时|分钟|米|千克|个|只|天)(?![\w])|\$\s?\d"),
    rule("topic(math)", TASK, 0.3, words(r"maths?", r"mathematics", r"matem[aá]ticas?", r"matematika",
                                         r"matematikos", r"математик\w*") + "|" + anywhere(r"数学")),
)

_QUANTITY_RE = re.compile(_QUANTITY)
_NUMBER_RE = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?(?![\w])|[一二三四五六七八九十百千万两]+(?:个|只|元|天|岁|人|本|次)")


class MathSignals(TextFamily):
    """Evidence that the request wants a mathematical answer."""

    name = TASK
    prose_rules = RULES_PROSE

    def extra(self, scope: Scope, factor: float, prefix: str) -> list[Signal]:
        """Word problems: a quantity question plus at least two numbers in the prose."""
        text = scope.prose_lowered
        if not text or _QUANTITY_RE.search(text) is None:
            return []
        numbers = 0
        for _ in _NUMBER_RE.finditer(text):
            numbers += 1
            if numbers >= 2:
                return [Signal(self.name, TASK, round(1.5 * factor, 3), prefix + "word problem")]
        return []
