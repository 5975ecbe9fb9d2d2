"""General-task signals: writing, translation, summarising, advice and chit-chat.

``general`` is also the default task, so these signals are not needed to *reach* general; they exist to keep
requests that merely mention a technical word in the general pool ("write a poem about derivatives",
"translate 'integral' into Spanish", "summarise this article about Python's history").

============  =====  =================================================================
writing       2.0    write a poem/story/essay/email/letter/speech ... (multilingual)
translate     1.5    translate / 翻译 / traduce / išversk ...
summarise     1.5    summarize / tl;dr / 总结 / resume / apibendrink ...
chit-chat     1.0    jokes, recipes, recommendations, greetings, feelings
============  =====  =================================================================
"""

from __future__ import annotations

from .base import TextFamily
from .types import anywhere, rule, stems, words

TASK = "general"

RULES_PROSE = (
    rule("writing", TASK, 2.0,
         r"\b(?:write|compose|draft|give me|create)\b[^.?!\n]{0,30}?\b(?:poems?|haikus?|limericks?|sonnets?|"
         r"stor(?:y|ies)|essays?|e-?mails?|letters?|speech|toast|song|lyrics|tweets?|blog posts?|cover letter|"
         r"slogans?|product description|bio|caption|eulogy|wedding vows|invitation)\b"
         r"|\b(?:escrib\w*|redact\w*)[^.?!\n]{0,30}?(?:poema|cuento|historia|ensayo|correo|carta|canci[oó]n|"
         r"discurso|art[ií]culo)"
         r"|" + stems(r"parašyk", r"sukurk", r"sugalvok") + r"\w*[^.?!\n]{0,30}?(?:eilėrašt|laišk|pasakojim|"
         r"istorij|esė|rašin|dain|sveikinim|kalb)"
         r"|" + anywhere(r"写一首", r"写首", r"写一篇", r"写篇", r"写封", r"写一封", r"作文", r"诗歌", r"写个故事", r"文案")
         + r"|(?:écri\w*|schreib\w*|напиши)[^.?!\n]{0,30}?(?:poème|lettre|histoire|gedicht|brief|geschichte|"
         r"стих|письмо|рассказ)"),
    rule("translate", TASK, 1.5,
         words(r"translate", r"translation", r"traduce", r"traducir", r"traducción", r"traduis", r"traduire",
               r"übersetze", r"переведи", r"traduza", r"traduci")
         + "|" + stems(r"išversk", r"išverskite", r"vertim", r"išvers") + "|" + anywhere(r"翻译", r"翻訳", r"번역")),
    rule("summarise", TASK, 1.5,
         words(r"summari[sz]e", r"summary", r"tl;?dr", r"key takeaways", r"resume", r"resumen", r"res[uú]melo",
               r"résume", r"zusammenfassung", r"fasse", r"кратко", r"перескажи", r"riassumi")
         + "|" + stems(r"apibendrink", r"santrauk", r"sutrumpink") + "|" + anywhere(r"总结", r"摘要", r"概括",
                                                                                     r"要約", r"요약")),
    rule("chit-chat", TASK, 1.0,
         words(r"tell me a joke", r"jokes?", r"recipes?", r"recommend", r"suggestions? for", r"how are you",
               r"good morning", r"hello", r"hi there", r"i feel", r"i'?m feeling", r"advice", r"gift ideas?",
               r"chiste", r"receta", r"recomienda", r"consejos?", r"hola", r"me siento", r"anekdot\w*",
               r"recept\w*", r"patark\w*", r"labas", r"sveiki", r"jaučiuosi")
         + "|" + anywhere(r"笑话", r"食谱", r"菜谱", r"推荐", r"你好", r"建议", r"心情")),
)


class GeneralSignals(TextFamily):
    """Evidence for open-ended writing, translation, summaries and conversation."""

    name = TASK
    prose_rules = RULES_PROSE
