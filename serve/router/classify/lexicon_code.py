"""Vocabularies of the code family (closed sets: anything here may appear in a signal's detail)."""

from __future__ import annotations

import re

KNOWN_LANGS = frozenset({
    "python", "py", "python3", "javascript", "js", "typescript", "ts", "tsx", "jsx", "java", "kotlin", "go",
    "golang", "rust", "rs", "c", "cpp", "c++", "h", "csharp", "cs", "c#", "ruby", "rb", "php", "swift",
    "scala", "bash", "sh", "shell", "zsh", "console", "powershell", "ps1", "sql", "mysql", "postgresql",
    "html", "css", "scss", "xml", "json", "yaml", "yml", "toml", "ini", "dockerfile", "makefile", "lua",
    "r", "matlab", "perl", "haskell", "elixir", "dart", "vue", "svelte", "diff", "graphql", "proto",
    "terraform", "hcl", "nginx", "groovy", "julia", "vb", "vba", "asm", "solidity", "text", "",
})

PROG_LANGS = (
    "python", "javascript", "typescript", "java", "kotlin", "golang", "rust", "ruby", "php", "perl", "scala",
    "haskell", "bash", "powershell", "sql", "c++", "c#", "f#", "verilog", "vhdl", "fortran", "cobol", "elixir",
    "clojure", "erlang", "ocaml", "lua", "dart", "matlab", "julia", "solidity", "zig",
    "nim", "groovy", "vba", "tsql", "plsql", "zsh", "awk", "lisp",
    "cuda", "opencl", "glsl", "hlsl", "wasm", "webassembly",
    "html", "css", "scss", "sass", "jsx", "tsx", "json", "yaml", "toml", "graphql", "pyspark",
    "python3", "nodejs", "js", "deno", "bun", "pitono", "пайтон", "питон", "джава",
)

# Tech vocabulary: libraries, frameworks, tools, platforms, programming concepts (multilingual).
TECH = {
    "words": (
        # libraries / frameworks / runtimes
        "react", "vue", "angular", "svelte", "nextjs", "nuxt", "django", "flask", "fastapi", "nestjs",
        "laravel", "symfony", "pandas", "numpy", "scipy", "matplotlib", "seaborn", "sklearn",
        "pytorch", "tensorflow", "keras", "jax", "huggingface", "langchain", "celery", "kafka",
        "rabbitmq", "redis", "memcached", "mongodb", "mongoose", "postgres", "postgresql", "mysql", "sqlite",
        "mariadb", "dynamodb", "cassandra", "elasticsearch", "supabase", "firebase", "prisma",
        "sqlalchemy", "hibernate", "jquery", "bootstrap", "tailwind", "webpack", "vite", "babel", "eslint",
        "prettier", "jest", "mocha", "pytest", "junit", "unittest", "selenium", "playwright", "cypress",
        "puppeteer", "aiohttp", "asyncio", "tokio", "goroutine", "goroutines", "rxjs",
        "redux", "zustand", "graphql", "grpc", "protobuf", "openapi", "swagger", "pydantic", "dataclass",
        "dataframe", "dataframes", "numpy", "opencv", "godot", "unreal", "qt", "gtk", "tkinter",
        "pygame", "electron", "flutter", "swiftui", "uikit", "xamarin", "android", "gradle", "maven", "cmake",
        "npm", "yarn", "pnpm", "conda", "virtualenv", "venv", "cargo", "rustc", "gcc",
        "clang", "llvm", "jvm", "dotnet", "nuget", "composer", "ruby", "bundler", "homebrew",
        # devops / infra / tools
        "git", "github", "gitlab", "bitbucket", "docker", "dockerfile", "kubernetes", "k8s", "kubectl",
        "terraform", "ansible", "jenkins", "nginx", "apache", "systemd", "systemctl", "cron",
        "crontab", "bash", "zsh", "powershell", "linux", "ubuntu", "debian", "centos", "wsl", "ssh", "scp",
        "rsync", "ssl", "tls", "dns", "tcp", "udp", "websocket", "websockets", "oauth", "jwt",
        "cors", "csrf", "api", "apis", "sdk", "cli", "ide", "vscode", "vim", "emacs", "jupyter", "colab",
        "aws", "azure", "gcp", "ec2", "s3", "cloudflare", "vercel", "heroku", "netlify", "webhook",
        "webhooks", "microservice", "microservices", "serverless", "devops", "localhost",
        "dotenv", "yaml", "json", "xml", "csv", "regex", "regexp", "stdout",
        "stderr", "stdin", "ffmpeg", "curl", "wget", "grep", "sed", "awk", "vba",
        "vlookup", "xlookup", "sumif", "sumifs", "countif", "iferror", "spreadsheet", "airflow",
        "spark", "hadoop", "dbt", "snowflake", "bigquery", "tableau", "powerbi", "salesforce", "lwc",
        "wordpress", "shopify", "twilio", "zapier", "arduino", "esp32", "mqtt",
        # spreadsheets (formulas count as code) and their localised function names
        "excel", "excelyje", "excelio", "excel'yje", "эксель", "экселе", "excel's", "xlsx", "vlookup", "hlookup",
        "sverweis", "buscarv", "procv", "recherchev", "index-match", "arrayformula", "importrange", "dax",
        "macro", "macros", "makro", "postgresql", "psql", "pgadmin", "phpmyadmin", "ssms",
        # concepts
        "code", "coding", "codebase", "programming", "programmer", "developer", "debug", "debugging",
        "debugger", "compile", "compiler", "compiling", "compiled", "runtime", "refactor", "refactoring",
        "function", "functions", "variable", "variables", "array", "arrays", "boolean",
        "struct", "enum", "pointer", "pointers", "null",
        "nullptr", "undefined", "exception", "exceptions", "traceback", "segfault", "stacktrace", "recursion",
        "recursive", "iterator", "iterate", "loop", "loops", "callback", "callbacks", "closure", "closures",
        "async", "await", "promise", "promises", "thread", "threads", "threading", "mutex", "deadlock",
        "concurrency", "multiprocessing", "coroutine", "coroutines", "decorator", "decorators",
        "constructor", "inheritance", "polymorphism", "interface", "interfaces", "generics", "namespace",
        "dependency",
        "dependencies", "repo", "repository", "commit", "commits", "rebase", "merge",
        "endpoint", "endpoints", "backend", "frontend", "fullstack", "database", "databases", "query",
        "queries", "schema", "migration", "migrations", "orm", "caching",
        "localhost",
        "script", "scripts", "scripting", "linter", "lint", "typescript",
        "usestate", "useeffect", "dom", "css", "html", "div", "flexbox",
        "stylesheet", "rerender", "hashmap", "hashtable", "bfs", "dfs",
        "memoization", "leetcode", "algorithm", "algorithms", "subarray", "substring", "subsequence",
        "bitwise", "trie", "refcount", "garbage",
        "profiling", "profiler",
        "mocking", "fixture", "fixtures", "payload",
        "json", "parser", "parsing", "serialize", "deserialize", "utf8", "base64",
        "encrypt", "decrypt", "auth", "authentication",
        "socket", "sockets",
        "config", "configuration",
        "logging", "syntax", "docstring",
        "mypy", "ruff", "pylint",
        "stacktrace", "executable",
        "firmware",
        # es / pt / it / fr / de
        "código", "codigo", "programación", "programacion", "programar", "compilar", "depurar", "bucle",
        "recursión", "función", "funcion", "variable", "arreglo", "cadena", "desarrollador", "servidor",
        "consulta", "tabla", "programação", "funções", "função", "codice", "programmazione", "funzione",
        "programmation", "fonction", "programmieren", "quellcode", "funktion", "skript", "datenbank",
        # ru
        "код", "программирование", "скрипт", "функция", "функцию", "функции", "ошибка", "массив", "сервер",
        "запрос", "база", "переменная", "класс", "метод", "библиотека", "компилятор", "докер", "гит",
        "питоне", "таблицах", "формула", "формулу", "макрос", "sql-запрос", "postgres", "линукс",
        # ar
        "بايثون", "جافاسكريبت", "جافا", "إكسل", "اكسل", "دالة", "الدالة", "برمجة", "البرمجة", "الكود", "كود",
        "برنامج", "برنامجاً", "استعلام", "مكتبة", "خادم", "الخادم",
        "регулярка", "регулярку", "регулярки",
    ),
    "stems": (
        # lt
        "kodas", "kodą", "kodo", "kode", "programav", "programuot", "kompiliuo", "kintam", "rekursij",
        "funkcij", "skript", "server", "duomenų", "klaid", "sąraš", "masyv", "šakos", "šaką", "šakas",
        "konflikt", "komit", "biblioteko", "bibliotek", "derint", "užklaus", "metod", "klasė", "klasę",
        # es
        "programa", "servid", "consult", "depura", "compila", "librer",
    ),
    "phrases": (
        "linked list", "binary tree", "binary search", "hash map", "hash table", "data structure",
        "data structures", "time complexity", "space complexity", "big o", "unit test", "unit tests",
        "pull request", "merge request", "merge conflict", "stack overflow", "stack trace", "null pointer",
        "memory leak", "race condition", "dynamic programming", "rest api", "web app", "web scraper",
        "command line", "environment variable", "environment variables", "foreign key", "primary key",
        "visual studio", "vs code", "node js", "next js", "react native", "spring boot", "ruby on rails",
        "machine learning model", "base de datos", "error de sintaxis", "duomenų bazė", "duomenų bazės",
        "google sheets", "excel formula", "google sheet", "apps script", "power bi", "conditional format", "monotonic stack", "monotonous stack", "seq scan", "explain analyze",
        "regular expression", "expresión regular", "expressão regular", "expression régulière",
        "regulärer ausdruck", "reguliarioji išraiška", "reguliariąja išraiška", "регулярное выражение", "регулярного выражения", "cron expression", "cron job",
        "longest increasing subsequence", "sliding window", "two pointers", "pivot table", "csv file", "power query", "conditional formatting", "objective c",
    ),
    "cjk": (
        "代码", "编程", "程序", "脚本", "报错", "调试", "编译", "数据库", "前端", "后端", "接口", "正则", "变量", "数组",
        "字符串", "递归", "异常", "函数", "爬虫", "部署", "容器", "服务器", "框架", "组件", "依赖", "内存泄漏",
        "并发", "线程", "进程", "索引", "查询", "语法", "单元测试", "表格公式", "单元格", "谷歌表格", "wps表格", "反向代理",
        "端口", "正規表現", "정규식", "정규표현식", "エクセル", "セル", "スプレッドシート", "コマンド", "ブランチ", "コミット", "リポジトリ", "コンテナ", "엑셀",
        "셀에", "파이썬", "자바스크립트", "도커", "쿼리", "리눅스", "깃허브", "브랜치", "커밋", "컨테이너", "コード", "プログラム", "関数", "エラー", "変数",
        "配列", "ファイル", "サーバー", "データベース", "スクリプト", "ライブラリ", "コンパイル", "バグ", "코드",
        "프로그램", "함수", "에러", "오류", "변수", "배열", "서버", "데이터베이스", "스크립트", "컴파일", "버그",
    ),
}

# "Just tell me the time, I don't need code": the user mentions code but wants something else (the number).
CODE_NEGATIONS = {
    "phrases": (
        "don't need code", "dont need code", "do not need code", "don't need the code", "no code",
        "not code", "not the code", "without code", "no need for code", "don't want code", "do not want code",
        "not looking for code", "don't write code", "don't need a script", "don't need a program",
        "no programming", "sin código", "no necesito código", "ohne code", "pas de code", "sans code",
        "be kodo", "без кода",
    ),
    "cjk": ("不需要代码", "不要代码", "不用写代码", "コードは不要", "코드는 필요 없"),
}

CODE_QUESTIONS = {
    "phrases": (
        "what does this code", "what does this function", "what does this script", "what does this query",
        "what does this regex", "what does the following code", "this code", "my code", "the code",
        "this function", "my function", "this script", "my script", "this query", "my query", "doesn't compile",
        "does not compile", "won't compile", "not compiling", "time complexity", "space complexity",
        "code review", "stack overflow error", "compile error", "compilation error", "runtime error",
        "syntax error", "type error", "merge conflict", "pull request", "este código", "mi código", "el código",
        "este script", "šis kodas", "mano kodas", "kodas neveikia", "esse código", "meu código", "ce code",
        "mon code", "dieser code", "mein code", "этот код", "мой код", "big o", "null pointer", "memory leak",
        "race condition", "segmentation fault", "infinite loop", "off by one", "edge cases", "unit tests",
        "unit test", "the build", "the compiler", "the linter",
    ),
}

QUESTION_WORDS = frozenset((
    "how", "why", "what", "which", "when", "where", "can", "could", "should", "is", "does", "do", "cómo", "por",
    "qué", "cuál", "kaip", "kodėl", "kas", "ar", "kuo", "jak", "comment", "pourquoi", "wie", "warum", "как",
    "почему", "что", "como", "porque", "perché", "come"))
CJK_QUESTION = ("怎么", "如何", "为什么", "什么", "吗", "？", "哪", "どう", "ですか", "ますか", "어떻게", "왜", "뭐")

CODE_VERBS = (
    "write", "writing", "create", "implement", "generate", "build", "make", "code", "develop", "translate",
    "convert", "port", "rewrite", "refactor", "optimize", "optimise", "fix", "debug", "review", "complete",
    "modify", "add", "update", "need", "want", "show", "give", "explain",
    # es / pt / it / fr
    "escribe", "escribir", "escríbeme", "crea", "crear", "implementa", "implementar", "genera", "haz",
    "hazme", "dame", "corrige", "depura", "optimiza", "refactoriza", "escreva", "crie", "scrivi", "crea",
    "écris", "écrire", "écrivez", "crée",
    # lt
    "parašyk", "parašykite", "sukurk", "sukurkite", "įgyvendink", "sugeneruok", "pataisyk", "ištaisyk",
    "optimizuok", "perrašyk", "realizuok", "parašyti",
    # de / ru
    "schreib", "schreibe", "implementiere", "erstelle", "напиши", "напишите", "реализуй", "исправь",
)
CODE_NOUNS = (
    "function", "script", "program", "code", "class", "method", "snippet", "module", "query", "regex",
    "regexp", "test", "api", "endpoint", "cli", "one-liner", "dockerfile", "makefile", "sql", "decorator",
    "parser", "scraper", "bot", "webapp", "component", "shader", "macro", "lambda", "migration", "schema",
    "algorithm", "implementation", "unittest", "hook", "plugin", "extension", "app", "server", "daemon",
    "formula", "python", "javascript", "typescript", "java", "rust", "golang", "bash", "powershell",
    "c++", "c#", "kotlin", "php", "ruby", "swift", "html", "css", "react", "vba", "docstring", "cron",
    # es / pt / it / fr / de / ru / lt
    "función", "funcion", "funções", "função", "funzione", "fonction", "programa", "programma", "programme",
    "código", "codigo", "codice", "clase", "classe", "método", "metodo", "consulta", "componente",
    "funktion", "programm", "skript", "klasse", "функцию", "функция", "код", "программу", "скрипт", "класс",
    "запрос", "funkciją", "funkcija", "funkcijas", "skriptą", "skriptas", "programą", "programa", "kodą",
    "klasę", "metodą", "užklausą", "testus", "testą",
)
# "write a movie script", "write a test for my students", "code of conduct"
NOUN_BLOCKERS = ("movie", "film", "video", "youtube", "tv", "musical", "play", "podcast", "radio", "comic",
                 "theatre", "theater", "sales", "speech", "dress", "promo", "discount", "morse", "zip", "postal",
                 "driving", "personality", "iq", "math", "maths", "spelling", "vocabulary", "cocktail",
                 "marketing", "business", "fitness", "training", "study", "workout", "diet", "meal")

LANG_REQUEST_PREPS = ("in", "using", "with", "en", "naudojant", "на", "em", "mit", "per", "con", "via",
                      "into", "to")

SQL_PHRASES = ("select from", "insert into", "create table", "alter table", "drop table", "inner join",
               "left join", "right join", "outer join", "group by", "order by", "foreign key", "primary key",
               "stored procedure", "sql query", "sql server")

# Substrings that (almost) only appear in code.
SYMBOLS = ("==", "!=", "=>", "->", "::", "&&", "||", "+=", "-=", "<-", "%>%", "()", "){", ") {", "};", "</",
           "/>", "[]", "${", "#include", "[i]", "[0]", "++", "/*", "__", "{}", "=\"", "='", "\":", "):",
           "self.", "this.", "console.", "std::", "<?php", "lambda ", " = [", " = {", "});", "},", "];")

# First token of a line: statement keywords (code) and shell commands.
LINE_STARTS = dict.fromkeys((
    "def", "class", "import", "from", "return", "if", "elif", "else", "for", "while", "try", "except",
    "catch", "finally", "func", "fn", "let", "const", "var", "public", "private", "protected", "static",
    "void", "int", "package", "using", "#include", "#define", "SELECT", "INSERT", "UPDATE", "CREATE",
    "ALTER", "DELETE", "WITH", "FROM", "WHERE", "print", "console.log", "System.out.println", "async",
    "await", "export", "module", "struct", "impl", "enum", "interface", "type", "switch", "case", "break",
    "continue", "throw", "raise", "assert", "with", "yield", "end", "begin", "do", "done", "fi", "then",
    "echo", "printf", "println", "self", "this", "@app.route", "@dataclass", "@property", "@Override",
    "library", "require", "val", "match", "lambda", "pub", "mod", "use", "namespace", "template",
), "stmt") | dict.fromkeys((
    "pip", "pip3", "npm", "npx", "yarn", "pnpm", "git", "docker", "kubectl", "helm", "apt", "apt-get",
    "cargo", "conda", "mvn", "gradle", "gcc", "g++", "clang", "javac", "rustc", "ssh", "chmod", "chown",
    "systemctl", "curl", "wget", "tar", "grep", "awk", "sed", "ls", "cd", "sudo", "brew", "python",
    "python3", "node", "make", "cmake", "go", "terraform", "aws", "gcloud", "az", "mkdir", "rm", "cp", "mv",
    "cat", "tail", "journalctl", "ps", "kill", "export", "source", "poetry", "uv", "pytest", "ffmpeg",
), "shell")
SHELL_SUBCOMMANDS = frozenset((
    "install", "run", "build", "test", "push", "pull", "commit", "checkout", "clone", "merge", "rebase",
    "apply", "get", "describe", "logs", "exec", "compose", "start", "stop", "status", "restart", "init",
    "add", "remove", "update", "upgrade", "-m", "-c", "-v", "-r", "-rf", "-la", "-l", "-x", "-f", "-p", "-i",
))

FILE_EXTS = frozenset((
    "py", "js", "mjs", "cjs", "ts", "tsx", "jsx", "java", "go", "rs", "cpp", "cc", "hpp", "cs", "rb", "php",
    "swift", "kt", "scala", "sh", "bash", "ps1", "sql", "html", "css", "scss", "vue", "svelte", "ipynb",
    "yaml", "yml", "toml", "gradle", "lua", "dart", "pl", "ex", "exs", "tf", "proto", "jar", "dll", "so",
    "exe", "wasm", "json", "xml", "ini", "cfg", "conf", "env", "lock", "md", "csv", "log", "h", "c", "m",
    "r", "jl", "zig", "sol", "vb", "bat", "cmd", "xlsx", "xlsm", "vbs", "dockerfile", "gitignore", "mod",
))
FILE_NAMES = ("dockerfile", "makefile", "package.json", "requirements.txt", "cargo.toml", "go.mod", "pom.xml",
              ".gitignore", "docker-compose", "tsconfig", "pyproject", ".env", "webpack.config", "/etc/",
              "node_modules", "__init__", "~/.", "c:\\")

CJK_REQUEST_RE = re.compile(
    r"(?:写|编写|实现|生成|帮我写|给我写|优化|重构|修复|调试|改写)[^。？！\n]{0,12}"
    r"(?:函数|程序|脚本|代码|类|方法|爬虫|接口|正则|sql|python|java|bug|算法|组件)"
    r"|(?:コード|関数|プログラム|スクリプト|クラス)[^。\n]{0,10}(?:書いて|作成|実装|作って)"
    r"|(?:코드|함수|프로그램|스크립트|클래스)[^.\n]{0,10}(?:작성|만들어|구현|짜)"
    r"|给我[^。？！\n]{0,6}(?:python|java|c\+\+|代码|code|程序|脚本)|(?:代码|程序|函数)(?:报错|有什么问题|怎么改|哪里错|出错|运行)|这段代码|뭐가 잘못|왜 안")
