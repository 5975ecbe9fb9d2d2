"""Conversation language detection: script first, then stopwords and diacritics for Latin-script languages.

Returns ISO 639-1 codes (``zh``, ``ja``, ``ko``, ``ru``, ``uk``, ``ar``, ``fa``, ``he``, ``hi``, ``th``, ``el``,
``en``, ``es``, ``fr``, ``de``, ``it``, ``pt``, ``lt``, ``nl``, ``pl``, ``tr``, ``vi``, ``id``) or ``und``.
Only the first :data:`SAMPLE_CHARS` characters of the prose are looked at.
"""

from __future__ import annotations

import re

SAMPLE_CHARS = 600

_SCRIPTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("kana", re.compile(r"[\u3040-\u30ff]")),
    ("han", re.compile(r"[\u4e00-\u9fff\u3400-\u4dbf]")),
    ("hangul", re.compile(r"[\uac00-\ud7af\u1100-\u11ff]")),
    ("cyrillic", re.compile(r"[\u0400-\u04ff]")),
    ("arabic", re.compile(r"[\u0600-\u06ff]")),
    ("hebrew", re.compile(r"[\u0590-\u05ff]")),
    ("devanagari", re.compile(r"[\u0900-\u097f]")),
    ("thai", re.compile(r"[\u0e00-\u0e7f]")),
    ("greek", re.compile(r"[\u0370-\u03ff]")),
)
_LATIN = re.compile(r"[a-zA-Z\u00c0-\u024f]")
_WORD = re.compile(r"[a-z\u00e0-\u024f']+")



def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STOPWORDS: dict[str, frozenset[str]] = {
    "en": _words("the and is are of to in that it for with you this what how can i my on be do was not "
                    "have a an or please your which why about me write does"),
    "es": _words("el la los las de que y en un una es por para con no se del al lo como más pero qué "
                    "cómo mi tu está son hay puedes cuál"),
    "fr": _words("le la les de des et est un une que qui dans pour pas sur avec ce je vous il du au "
                    "comment pourquoi mon est-ce"),
    "de": _words("der die das und ist nicht ein eine zu den mit von ich sie es für auf wie was dem "
                    "warum bitte kann ein"),
    "it": _words("il lo la gli le di che è e un una per non con del della sono come perché mi ti "
                    "questo cosa"),
    "pt": _words("o a os as de que e em um uma é para com não do da dos das por como você mais meu "
                    "isso qual"),
    "lt": _words("ir yra kad kaip su į iš ar tai bet jei kas kuris kuri mano tavo man tau ką kodėl "
                    "prašau kiek gali būti nuo apie"),
    "nl": _words("de het een en is van dat niet op te zijn ik je met voor wat hoe waarom"),
    "pl": _words("i w nie się na że jest z do to jak co czy ale dla jestem proszę dlaczego"),
    "tr": _words("ve bir bu da de için ne mi ile çok ben sen nasıl neden var"),
    "id": _words("dan yang di ini itu dengan untuk tidak dari saya apa bagaimana adalah"),
    "vi": _words("và của là có không một những cho với tôi bạn này được trong"),
}
# Stopword -> the languages that use it (one dict look-up per token instead of one set per language).
_WORD_LANGS: dict[str, tuple[str, ...]] = {}
for _lang, _stop in _STOPWORDS.items():
    for _w in _stop:
        _WORD_LANGS[_w] = (*_WORD_LANGS.get(_w, ()), _lang)
# Letters that (almost) only one candidate language uses: strong evidence.
_DIACRITICS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("lt", re.compile(r"[ėįųū]")),
    ("es", re.compile(r"[ñ¿¡]")),
    ("pt", re.compile(r"[ãõ]")),
    ("de", re.compile(r"[ßäöü]")),
    ("fr", re.compile(r"[èêëçœ]")),
    ("pl", re.compile(r"[łśźżńć]")),
    ("tr", re.compile(r"[ğış]")),
    ("vi", re.compile(r"[ơưđạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]")),
)


def detect_language(text: str) -> str:
    """Detect the language of ``text``.

    Args:
        text: Prose to inspect (only the first :data:`SAMPLE_CHARS` characters are used).

    Returns:
        An ISO 639-1 code, or ``und`` when there is no usable text.
    """
    sample = text[:SAMPLE_CHARS]
    if not sample.strip():
        return "und"
    if sample.isascii():
        # No other script and no diacritics: only the stopwords can tell (fast path, most traffic).
        return _latin_language(sample.lower()) if _LATIN.search(sample) else "und"
    counts = {name: len(rx.findall(sample)) for name, rx in _SCRIPTS}
    latin = len(_LATIN.findall(sample))
    script, n = max(counts.items(), key=lambda kv: kv[1])
    if n and (n >= latin * 0.25 or n >= 8):
        return _by_script(script, counts, sample)
    if latin == 0:
        return "und"
    return _latin_language(sample.lower())


def _by_script(script: str, counts: dict[str, int], sample: str) -> str:
    if counts["kana"]:
        return "ja"
    if script == "han":
        return "zh"
    if script == "cyrillic":
        return "uk" if re.search(r"[іїєґІЇЄҐ]", sample) else "ru"
    if script == "arabic":
        return "fa" if re.search(r"[پچژگ]", sample) else "ar"
    return {"hangul": "ko", "hebrew": "he", "devanagari": "hi", "thai": "th", "greek": "el"}.get(script, "und")


def _latin_language(lowered: str) -> str:
    tokens = _WORD.findall(lowered)[:120]
    scores = dict.fromkeys(_STOPWORDS, 0.0)
    for tok in tokens:
        for lang in _WORD_LANGS.get(tok, ()):
            scores[lang] += 1.0
    if not lowered.isascii():
        for lang, rx in _DIACRITICS:
            hits = len(rx.findall(lowered))
            if hits:
                scores[lang] += 1.5 + min(hits, 6) * 0.5
        if re.search(r"[ąčęšž]", lowered) and scores["lt"] >= scores["pl"]:
            scores["lt"] += 1.0
    best = max(scores.items(), key=lambda kv: kv[1])
    if best[1] <= 0:
        return "en" if lowered.isascii() else "und"
    return best[0]
