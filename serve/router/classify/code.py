"""Code signals: fences, stack traces, diffs, syntax, SQL, regexes, shell commands, file names, code requests.

Weights (per hit, last user turn; scaled by scope in :class:`~.base.TextFamily`):

====================  ======  ==============================================================
fenced block          3.0     a non-maths ``` fence (detail names the language if known)
stack trace / diff    3.0     Python/Java/Rust/JS traces, ``@@ -1,2 +1,3 @@`` hunks
request(code)         2.5     "write a function ...", "escribe una función", "写一个函数", ...
error name / sql      2.0     ``ValueError``, ``SELECT ... FROM``
question(code)        2.0     "what does this code do", "time complexity", ...
syntax(...)           1.2     ``def f(``, ``#include <``, ``const x =``, ``=>``, ... (each construct)
shell / regex / html  1.5     ``pip install ...``, ``\\d+``, ``<div>``
language request      1.5     "in python", "using rust"
file name             1.0     ``main.py``, ``Dockerfile``
keyword(...)          0.6     programming vocabulary, up to 3 distinct words (multilingual)
====================  ======  ==============================================================
"""

from __future__ import annotations

import re

from .base import TextFamily
from .extract import Scope
from .types import Signal, rule, stems, words

TASK = "code"

KNOWN_LANGS = frozenset({
    "python", "py", "python3", "javascript", "js", "typescript", "ts", "tsx", "jsx", "java", "kotlin", "go",
    "golang", "rust", "rs", "c", "cpp", "c++", "h", "csharp", "cs", "c#", "ruby", "rb", "php", "swift",
    "scala", "bash", "sh", "shell", "zsh", "console", "powershell", "ps1", "sql", "mysql", "postgresql",
    "html", "css", "scss", "xml", "json", "yaml", "yml", "toml", "ini", "dockerfile", "makefile", "lua",
    "r", "matlab", "perl", "haskell", "elixir", "dart", "vue", "svelte", "diff", "graphql", "proto",
    "terraform", "hcl", "nginx", "groovy", "julia", "vb", "vba", "asm", "solidity", "text", "",
})

_LANG_WORDS = (
    "python", "javascript", "typescript", "java", "kotlin", "golang", "rust", "ruby", "php", "perl", "scala",
    "haskell", "bash", "powershell", "sql", "mysql", "postgresql", "sqlite", "mongodb", "redis", "html", "css",
    "react", "vue", "angular", "django", "flask", "fastapi", "node.js", "nodejs", "npm", "pandas", "numpy",
    "pytorch", "tensorflow", "docker", "kubernetes", "k8s", "git", "github", "api", "json", "yaml", "regex",
    "compiler", "compile", "debug", "debugger", "refactor", "unit test", "pytest", "junit", "variable",
    "array", "boolean", "recursion", "runtime", "exception", "segfault", "bug", "repository", "repo",
    "endpoint", "backend", "frontend", "database", "script", "code", "coding", "programming", "leetcode",
    "c++", "c#", "dataframe", "linux", "async", "thread", "mutex", "pointer", "struct", "lambda", "decorator",
    "webpack", "spring boot", "dotnet", ".net", "android", "ios app", "swiftui", "terraform", "ansible",
    "microservice", "http request", "stack trace", "syntax error", "null pointer",
    # zh
    "代码", "编程", "程序", "脚本", "报错", "调试", "编译", "数据库", "前端", "后端", "接口", "正则表达式",
    "变量", "数组", "字符串", "递归", "异常", "函数调用", "爬虫",
    # es
    "código", "programación", "programar", "compilar", "depurar", "variable", "bucle", "recursión",
    "base de datos", "error de sintaxis", "desarrollador",
    # lt
    "kodas", "kodą", "kodo", "kode", "programavimas", "programavimo", "programuoti", "kompiliuoti",
    "kintamasis", "kintamąjį", "rekursija", "duomenų bazė", "duomenų bazės", "derinti", "programuotojas",
    # fr / de / ru / ja / ko / pt / it
    "programmation", "programmieren", "quellcode", "код", "программирование", "скрипт", "コード",
    "プログラム", "関数", "코드", "프로그램", "함수", "programação", "programmazione", "codice",
)

_CODE_NOUNS = (
    r"functions?|scripts?|programs?|code|python class(?:es)?|methods?|snippets?|modules?|sql quer(?:y|ies)|"
    r"regexe?s?|unit tests?|test cases?|apis?|endpoints?|cli|bash|one-liners?|dockerfiles?|makefiles?|sql|"
    r"decorators?|parsers?|scrapers?|bots?|web ?apps?|react (?:app|component)s?|shaders?|macros?|lambdas?|"
    r"database migrations?|json schemas?"
)
_CODE_VERBS = (
    r"write|writing|create|implement|generate|build|make|give me|show me|code|develop|translate|convert|"
    r"port|rewrite|refactor|optimi[sz]e|fix|debug|review|complete|modify"
)

RULES = (
    rule("stack trace", TASK, 3.0,
         r"Traceback \(most recent call last\)|^\s+at [\w$.<>]+\([\w$]*\.(?:java|kt|scala|js|ts|cs)"
         r"|Exception in thread \"|File \"[^\"\n]+\", line \d+|\berror\[E\d{4}\]|panicked at"
         r"|Segmentation fault|core dumped|undefined reference to|npm ERR!|^\s+at \w+ \(.*:\d+:\d+\)",
         cased=True),
    rule("diff hunk", TASK, 3.0, r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@|^diff --git |^\+\+\+ b/", cased=True),
    rule("error name", TASK, 2.0,
         r"\b(?:[A-Z][a-z]+)+(?:Error|Exception)\b(?!\s+(?:of|in) the)|\bE\d{4}\b|\bTS\d{4}\b|\bORA-\d{5}\b"
         r"|\bexit code [1-9]|\bstatus code [45]\d\d\b|\bsegfault", cased=True),
    rule("sql", TASK, 2.0,
         r"\bselect\s+(?:\*|distinct\b|count\(|[\w.]+(?:\s*,\s*[\w.()*]+)*)\s+from\s+[\w.]+|\binsert into\s+\w"
         r"|\bcreate (?:table|index|view)\b|\balter table\b|\b(?:left|inner|right|outer|cross) join\b"
         r"|\bgroup by\s+\w+|\bupdate\s+\w+\s+set\s+\w+\s*="),
    rule("syntax(def)", TASK, 1.2, r"^\s*(?:async\s+)?def \w+\s*\(", cased=True),
    rule("syntax(class)", TASK, 1.2, r"^\s*(?:export\s+)?(?:public\s+)?class \w+\s*[(:{<]|^\s*class \w+\s*$",
         cased=True),
    rule("syntax(import)", TASK, 1.2,
         r"^\s*(?:import [\w.]+(?: as \w+)?\s*;?\s*$|from [\w.]+ import \w|import \{[^}]*\} from|"
         r"using System|package [\w.]+;|require\(['\"])", cased=True),
    rule("syntax(#include)", TASK, 1.2, r"^\s*#include\s*[<\"]|^\s*#define \w+|\bint main\s*\(", cased=True),
    rule("syntax(function)", TASK, 1.2,
         r"\bfunction\s*\w*\s*\([^)\n]*\)\s*\{|\)\s*=>\s*[{(\w]|^\s*(?:const|let|var)\s+\w+\s*=\s*\S",
         cased=True),
    rule("syntax(typed decl)", TASK, 1.2,
         r"\b(?:public|private|protected)\s+(?:static\s+)?(?:final\s+)?(?:void|int|String|boolean|class|async|"
         r"override|fun)\b|\bfn\s+\w+\s*[(<]|\blet\s+mut\b|\bimpl(?:<[^>]*>)?\s+\w+|\bfunc\s+(?:\([^)]*\)\s*)?\w+\s*\("
         r"|\bpackage main\b|\bstd::\w+|\bfmt\.\w+\(", cased=True),
    rule("syntax(call)", TASK, 1.0,
         r"\b(?:console\.log|System\.out\.print\w*|printf|println!?|print|len|range|self\.\w+)\s*\(|"
         r"\b[a-z_]\w*\.[a-z_]\w*\([^)\n]{0,40}\)|\b\w+\[['\"]?\w+['\"]?\]\s*=|\bif\s*\(.+\)\s*\{|for\s*\(\w+ ",
         cased=True),
    rule("syntax(return)", TASK, 0.8, r"^\s*return\b[^\n]{0,80}$|^\s*(?:elif|except|finally|try:|else:)",
         cased=True),
    rule("markup(html)", TASK, 1.5,
         r"<(?:div|span|html|body|script|button|input|form|table|template|style|svg|head|ul|li|a href)\b[^>]{0,200}>"
         r"|</\w+>"),
    rule("regex", TASK, 1.5, r"\\[dwsbDWS][+*?{]|\[a-z|\[0-9|\[\^|\(\?[:=!<]|\bregexp?\b|regular expression|正则"
         r"|expresi[oó]n regular|reguliarioji išraišk|reguliariąją išraišk"),
    rule("shell command", TASK, 1.5,
         r"^\s*(?:\$\s+|sudo\s+)?(?:pip3?|npm|npx|yarn|pnpm|git|docker|kubectl|helm|apt(?:-get)?|cargo|conda|"
         r"mvn|gradle|gcc|g\+\+|clang|javac|rustc|ssh|chmod|chown|systemctl|curl|wget|tar|grep|awk|sed|ls|cd|"
         r"export|source)\s+-?-?[\w./-]|^\s*\$ \w+|\bbrew install\b|\bgo (?:build|run|test|mod|get)\b|"
         r"\bmake (?:install|build|clean|all)\b|\bpython3? -m\b|\bnode \w+\.js\b"),
    rule("file name", TASK, 1.0,
         r"\b[\w-]+\.(?:py|js|mjs|ts|tsx|jsx|java|go|rs|cpp|cc|hpp|cs|rb|php|swift|kt|scala|sh|bash|ps1|sql|"
         r"html|css|scss|vue|ipynb|yaml|yml|toml|gradle|lua|dart|pl|ex|exs|tf|proto|jar|dll|so|exe|wasm)\b"
         r"|\b[\w-]{2,}\.[ch]\b|\b(?:dockerfile|makefile|package\.json|requirements\.txt|cargo\.toml|go\.mod|"
         r"pom\.xml|\.gitignore|docker-compose|tsconfig\.json|pyproject\.toml|\.env)\b"),
    rule("inline code", TASK, 0.8, r"`[^`\n]{1,60}[(_.=/\[][^`\n]{0,60}`"),
    rule("keyword({})", TASK, 0.6, words(*(re.escape(w) for w in _LANG_WORDS)).replace("(?![\\w])", "(?![\\w+#])"),
         max_hits=3, vocab=_LANG_WORDS),
)

PROSE_RULES = (
    rule("request(code)", TASK, 2.5,
         r"\b(?:" + _CODE_VERBS + r")\b[^.?!\n]{0,50}?\b(?:" + _CODE_NOUNS + r")\b"
         # zh
         r"|(?:写|编写|实现|生成|帮我写|给我写|用|优化|重构|修复|调试)[^。？！\n]{0,12}(?:函数|程序|脚本|代码|类|方法|爬虫|接口|正则|sql|python|java|bug)"
         # es / pt / it / fr
         r"|(?:escrib|crea|implement|gener|program|haz|hazme|dame|corrig|depur|optimiz|refactoriz|escrev|"
         r"scriv|écri|écris)\w*[^.?!\n]{0,40}?(?:funci[oó]n|funç[aã]o|funzione|fonction|script|programa|"
         r"programma|programme|c[oó]digo|codice|clase|classe|m[eé]todo|consulta|pruebas unitarias|api)"
         # lt
         r"|" + stems("parašyk", "parašykite", "sukurk", "įgyvendink", "sugeneruok", "pataisyk", "ištaisyk",
                      "optimizuok", "perrašyk", "realizuok") +
         r"\w*[^.?!\n]{0,40}?(?:funkcij|skript|program|kod|klas|metod|užklaus|test)"
         # de / ru / ja / ko
         r"|(?:schreib|implementier|erstell)\w*[^.?!\n]{0,40}?(?:funktion|programm|skript|code|klasse)"
         r"|(?:напиши|напишите|реализуй|исправь)[^.?!\n]{0,40}?(?:функци|код|программ|скрипт|класс|запрос)"
         r"|(?:コード|関数|プログラム|スクリプト)[^。\n]{0,10}(?:書いて|作成|実装)"
         r"|(?:코드|함수|프로그램|스크립트)[^.\n]{0,10}(?:작성|만들어|구현)"),
    rule("question(code)", TASK, 2.0,
         r"what does (?:this|the following|my) (?:code|function|script|snippet|query|regex|line)"
         r"|(?:this|my|the) (?:code|function|script|query|program|build|test) (?:doesn'?t|does not|isn'?t|fails|"
         r"throws|crashes|returns|won'?t|keeps)|code review|time complexity|space complexity|big-?o\b|"
         r"stack ?overflow error|compil(?:e|er|ation) error|runtime error|syntax error|merge conflict|"
         r"pull request|这段代码|代码(?:报错|有什么问题|怎么改)|este código|mi código|šis kodas|mano kodas|kodas neveikia"),
    rule("language request", TASK, 1.5,
         r"\b(?:in|using|en|naudojant|на|em) (?:python|javascript|typescript|java|c\+\+|c#|"
         r"golang|rust|ruby|php|bash|sql|kotlin|swift|matlab|haskell|scala|powershell|node\.?js|react)\b"
         r"|用(?:python|java|javascript|c\+\+|go|rust|sql)"),
)


class CodeSignals(TextFamily):
    """Evidence that the request is about writing, reading or fixing code."""

    name = TASK
    rules = RULES
    prose_rules = PROSE_RULES

    def extra(self, scope: Scope, factor: float, prefix: str) -> list[Signal]:
        """Fenced blocks (from the scope's fence tags) and statement-shaped lines."""
        out: list[Signal] = []
        code_fences = [t for t in scope.fences if t not in ("text", "txt", "markdown", "md")]
        if code_fences:
            tag = code_fences[0]
            label = f"fenced block({tag})" if tag in KNOWN_LANGS and tag else "fenced block"
            out.append(Signal(self.name, TASK, round(3.0 * factor, 3), prefix + label))
        if len(_STATEMENT_END.findall(scope.text, 0, 4096)) >= 3:
            out.append(Signal(self.name, TASK, round(1.5 * factor, 3), prefix + "syntax(statements)"))
        return out


_STATEMENT_END = re.compile(r"[;{}]\s*$", re.MULTILINE)
