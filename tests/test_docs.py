"""The docs and the code's own words stay true: every repo path they name exists; sizes stay readable.

A path named in docs/, the README, a module's or function's docstring or a
comment is a promise to the reader that it is there. Long modules and
functions must say why they are long (a comment starting "Long:").
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from harness import REPO

TOP = ("notifyd", "tests", "bench", "hooks", "scripts", "docs")
# A repo path: one of the top folders, then path characters; `*` for a glob.
_PATH = re.compile(r"(?<![\w./$~-])((?:" + "|".join(TOP) + r")/[\w./*-]*[\w*/])")
# Made at run time, not kept in the repository.
GENERATED = ("bench/.venv",)
MODULE_LINES = 400
FUNCTION_LINES = 60


def _sources() -> list[Path]:
    files = [*REPO.glob("docs/*.md"), REPO / "README.md", REPO / "bench" / "README.md",
             REPO / "scripts" / "pingch", REPO / "pyproject.toml"]
    for top in ("notifyd", "tests", "bench"):
        files += sorted((REPO / top).rglob("*.py"))
    return [f for f in files if ".venv" not in f.parts]


def _named(text: str) -> set[str]:
    return {m.group(1).rstrip(".") for m in _PATH.finditer(text)}


def _exists(name: str) -> bool:
    if "*" in name:
        return any(REPO.glob(name))
    return (REPO / name).exists()


def test_every_repo_path_named_in_the_docs_and_the_code_exists() -> None:
    missing = sorted({f"{src.relative_to(REPO)}: {name}" for src in _sources()
                      for name in _named(src.read_text(errors="replace"))
                      if not _exists(name) and not name.startswith(GENERATED)})
    assert missing == []


def test_the_path_finder_finds_paths_and_leaves_other_words_alone() -> None:
    text = "see notifyd/watcher/loop.py and tests/e2e/, not $STATE/events/h.jsonl or notifyd.conf"
    assert _named(text) == {"notifyd/watcher/loop.py", "tests/e2e/"}


def _package_modules() -> list[Path]:
    return sorted(p for p in (REPO / "notifyd").rglob("*.py") if "__pycache__" not in p.parts)


def _says_why(lines: list[str]) -> bool:
    return any(line.strip().startswith(("# Long:", "Long:")) for line in lines)


@pytest.mark.parametrize("module", _package_modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_a_module_over_400_lines_says_why_it_is_long(module: Path) -> None:
    lines = module.read_text().splitlines()
    assert len(lines) <= MODULE_LINES or _says_why(lines[:40]), (
        f"{len(lines)} lines: split it, or say in its docstring (a line starting 'Long:') why not")


@pytest.mark.parametrize("module", _package_modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_a_function_over_60_lines_says_why_it_is_long(module: Path) -> None:
    source = module.read_text().splitlines()
    long = []
    for node in ast.walk(ast.parse("\n".join(source))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            assert node.end_lineno is not None
            body = source[node.lineno - 1:node.end_lineno]
            if len(body) > FUNCTION_LINES and not _says_why(body):
                long.append(f"{node.name} ({len(body)} lines)")
    assert long == []
