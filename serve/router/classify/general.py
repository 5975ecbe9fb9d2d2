"""General-task signals: writing, translation, summarising, advice and chit-chat.

``general`` is also the default task, so these signals are not needed to *reach* general; they exist to keep
requests that merely mention a technical word in the general pool ("write a poem about derivatives",
"translate 'integral' into Spanish", "summarise this article about Python's history").

======================  =====  ===========================================================
writing                 3.5    write a poem/story/essay/email/letter/speech ... (multilingual)
instruction(transform)  4.0    the turn *starts* with translate / rewrite / summarise / proofread ...
translate / summarise   1.5    translate / 翻译 / traduce / išversk; summarize / tl;dr / 总结 / apibendrink
advice                  1.5    careers, learning paths, tutors, "should I learn", personal decisions
chit-chat               1.0    jokes, recipes, recommendations, greetings, feelings, travel
======================  =====  ===========================================================
"""

from __future__ import annotations

from .base import TextFamily
from .extract import Scope
from .features import Lexicon, near
from .types import Signal

TASK = "general"

_WRITE_VERBS = frozenset((
    "write", "compose", "draft", "create", "give", "make", "craft", "help", "escribe", "escríbeme", "redacta",
    "redactar", "escribir", "escreva", "scrivi", "écris", "écrivez", "schreib", "schreibe", "напиши", "напишите",
    "parašyk", "parašykite", "sukurk", "sugalvok", "sudaryk"))
_WRITE_NOUNS = frozenset((
    "poem", "novel", "screenplay", "scene", "crossword", "quiz", "trivia", "chapter", "haiku", "limerick",
    "sonnet", "story", "stories", "essay", "email", "e-mail", "mail", "letter", "speech", "toast", "song",
    "lyrics", "tweet", "blog", "cover", "slogan", "description", "bio", "caption", "eulogy", "vows",
    "invitation", "tagline", "headline", "message", "note", "announcement", "newsletter",
    "advertisement", "pitch", "proposal", "summary", "outline", "itinerary", "menu", "recipe", "joke", "riddle",
    "rap", "ballad", "fable", "tale", "dialogue", "monologue", "sketch", "resume", "cv",
    "poema", "cuento", "historia", "ensayo", "correo", "carta", "canción", "discurso", "artículo", "mensaje",
    "poème", "lettre", "histoire", "gedicht", "brief", "geschichte", "стих", "стихотворение", "письмо",
    "рассказ", "eilėraštį", "eilėraštis", "laišką", "laiškas", "pasakojimą", "istoriją", "esė", "rašinį",
    "dainą", "sveikinimą", "kalbą", "tekstą", "straipsnį"))
_WRITE_CJK = ("写一首", "写首", "写一篇", "写篇", "写封", "写一封", "作文", "诗歌", "写个故事", "文案", "写一段", "祝福语")
_TRANSFORM_STARTS = frozenset((
    "translate", "reword", "rephrase", "rewrite", "paraphrase", "proofread", "summarize", "summarise", "polish",
    "shorten", "simplify", "traduce", "tradúceme", "reescribe", "resume", "resúmeme", "corrige", "išversk",
    "perrašyk", "apibendrink", "sutrumpink", "traduis", "übersetze", "переведи", "traduza", "traduci",
    "correct", "edit", "improve"))
_TRANSFORM_CJK = ("翻译", "翻譯", "改写", "润色", "總結", "总结", "请翻译", "把这段", "帮我翻译", "帮我润色")

_LEXICONS: tuple[tuple[str, float, Lexicon], ...] = (
    ("translate", 1.5, Lexicon(
        words=("translate", "translation", "traduce", "traducir", "traducción", "traduis", "traduire",
               "übersetze", "переведи", "traduza", "traduci", "translated"),
        stems=("išvers", "vertim"),
        cjk=("翻译", "翻訳", "번역"))),
    ("summarise", 1.5, Lexicon(
        words=("summarize", "summarise", "summary", "tldr", "resumen", "resúmelo", "resumelo", "résume",
               "zusammenfassung", "fasse", "перескажи", "riassumi"),
        stems=("apibendr", "santrauk", "sutrumpin"),
        phrases=("key takeaways", "tl dr", "main points"),
        cjk=("总结", "摘要", "概括", "要約", "요약"))),
    ("advice", 1.5, Lexicon(
        words=("career", "careers", "job", "jobs", "salary", "interview", "hire", "hiring", "resume", "tutor",
               "laid", "bootcamp", "degree", "university", "college", "school", "teacher", "exam", "exams",
               "homework", "motivation", "advice", "consejo", "consejos", "carrera", "trabajo", "patarimas",
               "darbas", "darbo", "karjera", "karjeros", "mokykloje"),
        phrases=("should i learn", "worth learning", "should i study", "should i get", "should i take",
                 "what should i do", "how can i help", "how do i motivate", "me recomiendas estudiar"),
        cjk=("工作", "面试", "职业", "工资", "怎么办", "焦虑", "考试", "孩子"))),
    ("chit-chat", 1.0, Lexicon(
        words=("joke", "jokes", "recipe", "recipes", "recommend", "recommendation", "recommendations", "advice",
               "hello", "hi", "hey", "thanks", "gift", "gifts", "vacation", "holiday", "trip", "travel", "visit",
               "movie", "movies", "book", "books", "restaurant", "wedding", "birthday", "dinner", "cook", "bake",
               "career", "job", "interview", "salary", "hobby", "relationship", "girlfriend", "boyfriend",
               "wife", "husband", "feel", "feeling", "lonely", "stressed", "anxious", "sleep", "workout",
               "diet", "chiste", "receta", "recomienda", "recomiéndame", "consejo", "consejos", "hola", "viaje",
               "anekdotą", "receptas", "receptą", "patark", "patarkite", "rekomenduok", "labas", "sveiki",
               "jaučiuosi", "kelionė", "kelionę", "atostogos", "atostogoms", "filmą", "knygą", "dovana", "dovaną"),
        phrases=("tell me a joke", "how are you", "good morning", "i feel", "i'm feeling", "gift ideas",
                 "should i learn", "me siento"),
        cjk=("笑话", "食谱", "菜谱", "推荐", "你好", "建议", "心情", "旅行", "旅游", "电影", "礼物", "おすすめ", "추천"))),
)


class GeneralSignals(TextFamily):
    """Evidence for open-ended writing, translation, summaries and conversation."""

    name = TASK

    def extra(self, scope: Scope, factor: float, prefix: str) -> list[Signal]:
        """Writing requests, transform instructions and the general lexicons."""
        f = scope.features
        found: list[tuple[str, float]] = []
        head = f.tokens[:2]
        if (head and (head[0] in _TRANSFORM_STARTS or (head[0] == "please" and head[1:2]
                                                       and head[1] in _TRANSFORM_STARTS))) \
                or (f.cjk and f.text.lstrip().startswith(_TRANSFORM_CJK)):
            found.append(("instruction(transform)", 4.0))
        if near(f, _WRITE_VERBS, _WRITE_NOUNS, window=6) is not None or (
                f.cjk and any(k in f.text for k in _WRITE_CJK)):
            found.append(("writing", 3.5))
        for label, weight, lex in _LEXICONS:
            if lex.any(f):
                found.append((label, weight))
        return [Signal(self.name, TASK, round(w * factor, 3), prefix + label) for label, w in found]
