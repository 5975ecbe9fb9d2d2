"""The Markdown docs against the code: config examples, CLI lines, Makefile targets, paths and links.

Offline and fast (no Ray, no vLLM: config examples are validated without the engine-key check, which imports
vLLM). Scans ``README.md`` and every other ``*.md`` in the repository except ``bench/results/`` (measurement
records, kept as written).
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from serve.config import ConfigError, FleetConfig

ROOT = Path(__file__).resolve().parents[2]
SKIP_DIRS = {"node_modules", "golden"}
SKIP_PREFIXES = ("bench/results",)


def _docs() -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel = Path(dirpath).relative_to(ROOT).as_posix()
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in SKIP_DIRS
                       and not f"{rel}/{d}".lstrip("./").startswith(SKIP_PREFIXES)]
        found += [Path(dirpath) / f for f in filenames if f.endswith(".md")]
    return sorted(found)


DOCS = _docs()
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def _rel(doc: Path) -> str:
    return doc.relative_to(ROOT).as_posix()


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _fenced(text: str) -> Iterator[tuple[str, str, int]]:
    """(language, body, line of the opening fence) per fenced block."""
    for m in FENCE.finditer(text):
        yield m.group(1), m.group(2), _line(text, m.start())


def _prose(text: str) -> str:
    """The text with fenced blocks blanked (line numbers kept)."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def _code_segments(doc: Path) -> Iterator[tuple[str, int]]:
    """Every inline code span and every (continuation-joined) line of a fenced block, with its line number."""
    text = doc.read_text(encoding="utf-8")
    for _, body, start in _fenced(text):
        pending, first = "", 0
        for i, line in enumerate(body.split("\n"), start + 1):
            if not pending:
                first = i
            if line.endswith("\\"):  # a shell continuation: one command over several lines
                pending += line[:-1] + " "
                continue
            yield pending + line, first
            pending = ""
    prose = _prose(text)
    for m in re.finditer(r"`([^`\n]+)`", prose):
        yield m.group(1), _line(prose, m.start())


def test_docs_found() -> None:
    names = {_rel(d) for d in DOCS}
    assert {"README.md", "loadtest/README.md", "deploy/README.md", "helm/qwen-serve/README.md"} <= names
    assert not any(n.startswith("bench/results/") for n in names)


# -- 1. every YAML config example is a valid fleet config ------------------------------------------------------

def _yaml_examples() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for lang, body, line in _fenced(doc.read_text(encoding="utf-8")):
            if lang in ("yaml", "yml") and not body.lstrip().lower().startswith("# fragment"):
                out.append((f"{_rel(doc)}:{line}", body))
    return out


YAML_EXAMPLES = _yaml_examples()


def test_there_are_yaml_examples() -> None:
    assert len([s for s, _ in YAML_EXAMPLES if s.startswith("README.md:")]) >= 2


@pytest.mark.parametrize(("where", "body"), YAML_EXAMPLES, ids=[w for w, _ in YAML_EXAMPLES])
def test_yaml_example_is_a_valid_fleet(where: str, body: str) -> None:
    """A YAML block in the docs is a whole fleet file (start it with ``# fragment`` if it is not)."""
    data = yaml.safe_load(body)
    try:
        FleetConfig.from_dict(data, source=where, check_paths=False, check_engine_keys=False)
    except ConfigError as exc:
        pytest.fail(f"{where}: the example does not validate (mark it `# fragment` if it is one):\n{exc}")


# -- 2. qwen-serve / qwen-loadtest lines use subcommands and flags the CLIs accept -------------------------------

def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse has no public accessor
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _parsers() -> dict[str, argparse.ArgumentParser]:
    from loadtest.cli import build_parser as loadtest_parser
    from serve.cli import build_parser as serve_parser

    return {"qwen-serve": serve_parser(), "qwen-loadtest": loadtest_parser()}


PROGRAM = re.compile(r"(?:^|(?<=[\s(`])|(?<=bin/))(qwen-serve|qwen-loadtest)(?![\w./-])"
                     r"|(?<=-m )(serve|loadtest)\.cli(?![\w.])")
CUT = re.compile(r"\s\|\s|;|&&|\s#|\"|\|\s*kubectl")


def _cli_problems(segment: str, parsers: dict[str, argparse.ArgumentParser]) -> list[str]:
    problems = []
    segment = segment.replace("\\|", " ")
    for m in PROGRAM.finditer(segment):
        prog = m.group(1) or {"serve": "qwen-serve", "loadtest": "qwen-loadtest"}[m.group(2)]
        rest = CUT.split(segment[m.end():], maxsplit=1)[0]
        tokens = [t.strip("[](),") for t in rest.split()]
        tokens = [t for t in tokens if t]
        parser = parsers[prog]
        subs = _subcommands(parser)
        current, name = parser, prog
        for tok in tokens:
            if tok.startswith("--"):
                for flag in tok.split("|"):
                    flag = flag.split("=", 1)[0].rstrip(".:")
                    if flag.startswith("--") and flag not in current._option_string_actions:
                        problems.append(f"`{name}` has no option {flag}")
            elif current is parser and re.fullmatch(r"[a-z][a-z-]*(\|[a-z][a-z-]*)*", tok):
                names = tok.split("|")
                unknown = [n for n in names if n not in subs]
                if unknown:
                    problems.append(f"`{prog}` has no subcommand {', '.join(unknown)}")
                    break
                if len(names) > 1:
                    break  # `run|sweep|compare|report`: an overview, no flags follow
                current, name = subs[names[0]], f"{prog} {names[0]}"
    return problems


def test_cli_lines_use_real_subcommands_and_flags() -> None:
    parsers = _parsers()
    segments = [(doc, seg, line) for doc in DOCS for seg, line in _code_segments(doc)]
    assert sum(len(PROGRAM.findall(seg)) for _, seg, _ in segments) >= 30  # the scan still finds the CLI lines
    problems = [f"{_rel(doc)}:{line}: {p}  [{seg.strip()[:100]}]"
                for doc, seg, line in segments for p in _cli_problems(seg, parsers)]
    assert not problems, "\n".join(problems)


def test_cli_check_catches_mistakes() -> None:
    parsers = _parsers()
    assert _cli_problems("qwen-serve up --profile demo --detach", parsers) == []
    assert _cli_problems("qwen-serve --log-json up --port 8000", parsers) == []
    assert _cli_problems("qwen-serve up --detatch", parsers) == ["`qwen-serve up` has no option --detatch"]
    assert _cli_problems("qwen-serve start", parsers) == ["`qwen-serve` has no subcommand start"]
    assert _cli_problems("python -m loadtest.cli run --base-url X --num-prompt 5", parsers) == [
        "`qwen-loadtest run` has no option --num-prompt"]
    assert _cli_problems("qwen-loadtest run|sweep|compare|report", parsers) == []
    assert _cli_problems("helm install qwen helm/qwen-serve -n qwen", parsers) == []


# -- 3. `make X` names a Makefile target ----------------------------------------------------------------------

def test_make_targets_exist() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", makefile, re.M))
    assert {"run", "test"} <= targets
    problems = [f"{_rel(doc)}:{line}: make {t}" for doc in DOCS for seg, line in _code_segments(doc)
                for t in re.findall(r"(?:^|(?<=\s))make ([a-z][\w-]*)", seg) if t not in targets]
    assert not problems, "no such Makefile target:\n" + "\n".join(problems)


# -- 4. repository paths exist; nothing outside the repository is cited ------------------------------------------

TOP_DIRS = sorted(p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("."))
PLACEHOLDER = re.compile(r"[*<>{}|$]")


def _path_tokens(seg: str) -> Iterator[str]:
    for tok in re.split(r"[\s,()\[\]=\"']+", seg):
        tok = tok.rstrip(".:;")
        if re.match(r"^\.\./|^\./", tok) or any(tok.startswith(d + "/") for d in TOP_DIRS):
            yield tok.split(".py:", 1)[0] + (".py" if ".py:" in tok else "")


def test_paths_in_the_docs_exist() -> None:
    problems, checked = [], 0
    for doc in DOCS:
        for seg, line in _code_segments(doc):
            for tok in _path_tokens(seg):
                checked += 1
                if PLACEHOLDER.search(tok):
                    continue
                here = (doc.parent / tok).resolve()
                inside = here.is_relative_to(ROOT) and here.exists()
                # `./x`, `../x`: from the doc's folder, inside the repository; else a repository path or one
                # relative to the doc's folder
                ok = inside if tok.startswith(".") else (ROOT / tok).exists() or inside
                if not ok:
                    problems.append(f"{_rel(doc)}:{line}: {tok}")
    assert checked >= 100  # the scan still finds the docs' paths
    assert not problems, "paths that are not in the repository:\n" + "\n".join(problems)


def test_no_citation_outside_the_repository() -> None:
    problems = [f"{_rel(doc)}:{_line(text, m.start())}: {m.group(0)}"
                for doc in DOCS for text in [doc.read_text(encoding="utf-8")]
                for m in re.finditer(r"\.\./shared\b|/work/\S*", text)]
    assert not problems, "the docs cite files their readers do not have:\n" + "\n".join(problems)


# -- 5. links and anchors resolve -----------------------------------------------------------------------------

def _anchors(doc: Path) -> set[str]:
    prose = _prose(doc.read_text(encoding="utf-8"))
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#+\s+(.*?)\s*$", prose, re.M)}


def test_links_and_anchors_resolve() -> None:
    problems = []
    for doc in DOCS:
        prose = _prose(doc.read_text(encoding="utf-8"))
        for m in re.finditer(r"\[[^\]]*\]\(([^)\s]+)\)", prose):
            target = m.group(1)
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (doc.parent / path).resolve() if path else doc
            where = f"{_rel(doc)}:{_line(prose, m.start())}: {target}"
            if not (dest.is_relative_to(ROOT) and dest.exists()):
                problems.append(f"{where} (no such file in the repository)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                problems.append(f"{where} (no such heading)")
    assert not problems, "\n".join(problems)
