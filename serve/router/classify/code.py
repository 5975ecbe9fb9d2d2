"""Code signals: fences, traces, diffs, code structure, code-like identifiers, tech vocabulary, code requests.

Weights (per hit, last user turn; scaled by scope in :class:`~.base.TextFamily`):

====================  ======  ==============================================================
fenced block          3.0     a non-maths ``` fence (detail names the language if known)
stack trace / diff    3.0     Python/Java/Rust/JS traces, ``@@ -1,2 +1,3 @@`` hunks
request(code)         3.5     "write a function ...", "escribe una función", "写一个函数", ...
syntax(structure)     <= 3.0  code-only symbols (``==``, ``=>``, ``;`` at line end, ``%>%``), lines that start
                              with a statement keyword, indentation (structural, language-agnostic)
error name / sql      2.0     ``ValueError``, ``SELECT ... FROM``, ``foreign key``
question(code)        2.0     "what does this code do", "time complexity", "doesn't compile", ...
identifiers           <= 1.6  snake_case, camelCase, ``obj.method(``, ``f()`` (0.4 each distinct)
shell command         1.5     ``pip install``, ``git rebase``, ``$ ls``
language request      1.5     "in python", "using rust", "用python"
language(...)         1.0     one programming language named
file name             1.0     ``main.py``, ``package.json``, ``Dockerfile``
keyword(...)          0.7+    tech vocabulary (libraries, tools, concepts): 0.2 + 0.5 per word, up to 3
short tech query      1.0     at most 9 tokens, no numbers, naming tech vocabulary or a language
tech question         0.4     a question (how/why/what/?/怎么) that names tech vocabulary or a language
negated(code)         -4.0    "I don't need code", "no code", "sin código": the user wants the answer, not code
====================  ======  ==============================================================
"""

from __future__ import annotations

import re

from .base import TextFamily
from .extract import Scope
from .features import Features, Lexicon, near
from .lexicon_code import (
    CJK_QUESTION,
    CJK_REQUEST_RE,
    CODE_NEGATIONS,
    CODE_NOUNS,
    CODE_QUESTIONS,
    CODE_VERBS,
    FILE_EXTS,
    FILE_NAMES,
    KNOWN_LANGS,
    LANG_REQUEST_PREPS,
    LINE_STARTS,
    NOUN_BLOCKERS,
    PROG_LANGS,
    QUESTION_WORDS,
    SHELL_SUBCOMMANDS,
    SQL_PHRASES,
    SYMBOLS,
    TECH,
)
from .types import Signal, rule

TASK = "code"
STRUCT_CHARS = 1024
IDENT_CHARS = 1024

RULES = (
    rule("stack trace", TASK, 3.0,
         r"Traceback \(most recent call last\)|^[ \t]+at [\w$.<>]+\([\w$]*\.(?:java|kt|scala|js|ts|cs)"
         r"|Exception in thread \"|File \"[^\"\n]+\", line \d+|\berror\[E\d{4}\]|panicked at"
         r"|Segmentation fault|core dumped|undefined reference to|npm ERR!|^[ \t]+at \w+ \(.*:\d+:\d+\)",
         cased=True),
    rule("diff hunk", TASK, 3.0, r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@|^diff --git |^\+\+\+ b/", cased=True),
)
# Cheap substring gates: a rule's regex only runs when one of its gate strings is in the text.
_GATES = {"stack trace": ("Traceback", "Exception", "File \"", "error[", "panicked", "fault", "dumped",
                          "undefined reference", "npm ERR", "    at ", "\tat "),
          "diff hunk": ("@@", "diff --git", "+++ b/")}
_NO_GATE = ("",)
_ERROR_RE = re.compile(r"\b[A-Z]\w*(?:Error|Exception)\b|\bE\d{4}\b|\bTS\d{4}\b|\bORA-\d{5}\b|\berrno\b"
                       r"|\bexit (?:code|status) [1-9]|\bstatus code [45]\d\d\b|\b[45]0[0-9] (?:error|bad|not)")
_LINE_RE = re.compile(r"^([ \t]*)([#$@]?[\w.]+)?([^\n]*?)[ \t]*$", re.MULTILINE)
# Identifier shapes, each behind a literal gate (a regex runs only when its gate is in the text): snake_case,
# camelCase, obj.method(, f(), Class.attr, <tag.
_IDENT_RES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("_", re.compile(r"\b[a-z][a-z0-9]*_[a-z0-9_]*[a-z0-9]\b")),
    ("", re.compile(r"\b[a-z]+[A-Z][a-z0-9]+\w*")),  # gated by _CAMEL_GATE
    ("(", re.compile(r"\b\w+\.\w+\(")),
    ("()", re.compile(r"\b\w+\(\)")),
    (".", re.compile(r"\b[A-Z]\w*\.[a-z]\w+")),
    ("<", re.compile(r"<[a-z]+[ >/]")),
)
MAX_IDENTS = 4
# camelCase needs a lower-case letter right before an upper-case one: a quick scan before the full pattern.
_CAMEL_GATE = re.compile(r"[a-z][A-Z]")
# "numpy mean of each row ignoring nan", "regex for emails": a search-style query naming tech vocabulary.
SHORT_QUERY_TOKENS = 9
_FILE_RE = re.compile(r"\b[\w-]+\.([a-z]{1,7}[0-9]?)\b")
_FILE_NAMES_RE = re.compile("|".join(map(re.escape, FILE_NAMES)))  # any of them occurs
_REGEX_RE = re.compile(r"\\[dwsbDWS][+*?{]|\[a-z|\[0-9|\[\^|\(\?[:=!<]")

_LEX_TECH = Lexicon(**TECH)
_LEX_LANG = Lexicon(words=PROG_LANGS, stems=("python", "javascri", "typescri", "golang", "kotlin", "haskell"))
_LEX_QUESTION = Lexicon(**CODE_QUESTIONS)
_LEX_SQL = Lexicon(phrases=SQL_PHRASES)
_LEX_NEGATION = Lexicon(**CODE_NEGATIONS)
# Cancels most of a code request: "I wrote a Python script ... just tell me the time, I don't need code".
NEGATION_WEIGHT = -4.0
_VERBS = frozenset(CODE_VERBS)
_NOUNS = frozenset(CODE_NOUNS)
_BLOCKERS = frozenset(NOUN_BLOCKERS)
_PREPS = frozenset(LANG_REQUEST_PREPS)
_SHELL_TOOLS = frozenset(("git", "docker", "npm", "pip"))
_SHELL_PHRASES = ("pip install", "npm install", "git rebase", "git merge", "git push", "git commit", "git pull",
                  "docker compose", "docker run")
_LANGS = frozenset(PROG_LANGS) | {"go", "r", "c"}
# The code symbols by their first character: only those whose first character occurs are counted.
_SYMBOL_HEADS: dict[str, tuple[str, ...]] = {}
for _sym in SYMBOLS:
    _SYMBOL_HEADS[_sym[0]] = (*_SYMBOL_HEADS.get(_sym[0], ()), _sym)
_SYMBOL_GROUPS = tuple(_SYMBOL_HEADS.items())


class CodeSignals(TextFamily):
    """Evidence that the request is about writing, reading or fixing code."""

    name = TASK
    rules = RULES

    def gate(self, label: str, text: str) -> bool:
        """Run a regex rule only when one of its cheap substring gates is present."""
        return any(g in text for g in _GATES.get(label, _NO_GATE))

    def extra(self, scope: Scope, factor: float, prefix: str) -> list[Signal]:
        """Fences, structure, identifiers and the token-based evidence."""
        found: list[tuple[str, float]] = []
        code_fences = [t for t in scope.fences if t not in ("text", "txt", "markdown", "md")]
        if code_fences:
            tag = code_fences[0]
            found.append((f"fenced block({tag})" if tag in KNOWN_LANGS and tag else "fenced block", 3.0))
        text = scope.text[:STRUCT_CHARS]
        found += _structure(text)
        found += _lexical(scope.features, scope.lowered[:STRUCT_CHARS])
        if ("Error" in text or "Exception" in text or "rror" in text or "xit " in text or "code" in text) \
                and _ERROR_RE.search(text):
            found.append(("error name", 2.0))
        if ("\\" in text or "[" in text or "(?" in text) and _REGEX_RE.search(text):
            found.append(("regex", 1.5))
        return [Signal(self.name, TASK, round(w * factor, 3), prefix + label) for label, w in found]


def _structure(text: str) -> list[tuple[str, float]]:
    """Language-agnostic code structure: symbols, statement-shaped lines, indentation, identifiers."""
    if len(text) < 8:
        return []
    # Only the symbols whose first character occurs are counted (a few dozen `in` tests: cheaper than set(text)).
    symbols = -text.count("://")
    for c, group in _SYMBOL_GROUPS:
        if c in text:
            for sym in group:
                symbols += text.count(sym)
    starts = indented = ends = 0
    shell = False
    if "\n" in text or len(text) < 400:
        for m in _LINE_RE.finditer(text):
            indent, first, rest = m.groups()
            if first:
                kind = LINE_STARTS.get(first)
                if kind == "shell" and (rest.startswith(" -") or rest[:1] == " " and
                                        rest.split(None, 1)[0] in SHELL_SUBCOMMANDS):
                    shell = True
                elif kind == "stmt" and rest[:1] in (" ", "(", ":", "{", ""):
                    starts += 1
                elif first[0] == "$" and rest[:1] == " ":
                    shell = True
            if indent and first and len(indent.expandtabs(4)) >= 2:
                indented += 1
            tail = rest[-1:] if rest else (first or "")[-1:]
            if tail in (";", "{", "}") or (tail == ":" and first in LINE_STARTS):
                ends += 1
    idents = _identifiers(text[:IDENT_CHARS])
    score = (0.5 * min(symbols, 4) + 0.6 * min(starts, 4) + 0.3 * min(indented, 4) + 0.5 * min(ends, 4))
    out: list[tuple[str, float]] = []
    if score >= 0.5:
        out.append(("syntax(structure)", round(min(score, 3.0), 3)))
    if idents:
        out.append(("identifiers", round(0.4 * min(len(idents), MAX_IDENTS), 3)))
    if shell:
        out.append(("shell command", 1.5))
    return out


def _identifiers(text: str) -> set[str]:
    """Distinct code-like identifiers (at most :data:`MAX_IDENTS`: the score counts no more)."""
    found: set[str] = set()
    if not ("_" in text or "(" in text or "." in text or "<" in text):
        return found
    for gate, rx in _IDENT_RES:
        if gate in text if gate else _CAMEL_GATE.search(text) is not None:
            found.update(rx.findall(text))
            if len(found) >= MAX_IDENTS:
                break
    return found


def _lexical(f: Features, lowered: str) -> list[tuple[str, float]]:
    """Token-level evidence: requests, questions, languages, vocabulary, SQL, shell, file names."""
    out: list[tuple[str, float]] = []
    if _LEX_NEGATION.any(f):
        out.append(("negated(code)", NEGATION_WEIGHT))
    noun = near(f, _VERBS, _NOUNS, window=6, blockers=_BLOCKERS)
    if noun is not None or (f.cjk and CJK_REQUEST_RE.search(f.text)):
        out.append(("request(code)", 3.5))
    if _LEX_QUESTION.any(f):
        out.append(("question(code)", 2.0))
    if _LEX_SQL.any(f) or ("select" in f.words and "from" in f.words and "where" in f.words):
        out.append(("sql", 2.0))
    langs = [lang for lang in _LEX_LANG.find(f, 1) if not (lang.startswith("python") and "monty" in f.words)]
    if langs:
        out.append((f"language({langs[0]})", 1.0))
    if _lang_request(f):
        out.append(("language request", 1.5))
    tech = _LEX_TECH.find(f, 3)
    if tech:
        out.append(("keyword(" + ",".join(tech) + ")", round(0.2 + 0.5 * len(tech), 3)))
    if (tech or langs) and len(f.tokens) <= SHORT_QUERY_TOKENS and not f.numbers and "request(code)" not in (
            label for label, _ in out):
        out.append(("short tech query", 1.0))
    if (tech or langs) and (not QUESTION_WORDS.isdisjoint(f.tokens[:3]) or "?" in f.text[-200:]
                            or (f.cjk and any(q in f.text for q in CJK_QUESTION))):
        out.append(("tech question", 0.4))
    if not _SHELL_TOOLS.isdisjoint(f.words) and any(f.has_phrase(p) for p in _SHELL_PHRASES):
        out.append(("shell command", 1.5))
    if "." in lowered:
        for ext in _FILE_RE.findall(lowered, 0, IDENT_CHARS):
            if ext in FILE_EXTS:
                out.append(("file name", 1.0))
                break
        else:
            if _FILE_NAMES_RE.search(lowered) is not None:
                out.append(("file name", 1.0))
    elif _FILE_NAMES_RE.search(lowered) is not None:
        out.append(("file name", 1.0))
    return out


def _lang_request(f: Features) -> bool:
    """"in python", "using rust", "en javascript", "用python"."""
    toks = f.tokens
    if _LANGS.isdisjoint(f.words) and not f.cjk:
        return False
    for i in range(1, len(toks)):
        if toks[i] in _LANGS and toks[i - 1] in _PREPS and (toks[i] not in ("go", "r", "c") or i + 1 == len(toks)
                                                             or toks[i + 1] not in ("to", "and", "a")):
            return True
    return f.cjk and any(f"用{lang}" in f.text for lang in ("python", "java", "javascript", "c++", "go", "rust",
                                                            "sql"))
