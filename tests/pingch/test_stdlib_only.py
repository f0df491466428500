"""The rule "stdlib only, on every job's path" holds by path (docs/ARCHITECTURE.md, modules table).

Every module pingch can load imports, anywhere in its code, only the standard
library or another module of the same set; and the packages' `__init__.py`
files import nothing, so loading a package costs only its own file. The check
reads the source (by AST), so an import inside a function that no test runs
is caught too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from harness import PY

PACKAGE = Path(__file__).resolve().parents[2] / "notifyd"
# The set, by path: two folders whole, five files, and the packages above them.
FOLDERS = ("pingch", "spool")
FILES = ("watcher/lease.py", "watcher/launch.py", "paths.py", "fsutil.py", "procfs.py")
INITS = ("__init__.py", "pingch/__init__.py", "spool/__init__.py", "watcher/__init__.py")
# The one import outside the set, with why it is never run on a job's path:
# `from notifyd.watcher import run_in_background`, the entry of a watcher
# spawned by an older notifyd, resolved by the package's __getattr__ only for
# that name.
OUTSIDE = {("watcher/__init__.py", "notifyd.watcher.loop")}
# `from __future__ import annotations` is a compiler directive, but it also
# loads the __future__ module: ~0.7 million instructions, a third of what
# pingch itself adds to an interpreter's start (bench/README.md). The job's
# path does without it; names known only to the type checker are quoted.
FUTURE = "__future__"


def on_the_path() -> list[Path]:
    files = [PACKAGE / f for f in (*FILES, *INITS)]
    for folder in FOLDERS:
        files += sorted((PACKAGE / folder).glob("*.py"))
    return sorted(set(files))


def dotted(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


ALLOWED = {dotted(p) for p in on_the_path()}


def is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def run_time_imports(tree: ast.AST, in_functions: bool = True) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except in `if TYPE_CHECKING:` bodies (never run).

    in_functions=False: only those that run when the module is loaded.
    """
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        if isinstance(node, ast.If) and is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if not in_functions and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def imported_names(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an import statement loads: `from notifyd import paths` loads notifyd.paths."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    assert node.level == 0, "relative imports are not used in notifyd"
    assert node.module is not None
    names = [node.module]
    for alias in node.names:
        sub = PACKAGE.parent.joinpath(*f"{node.module}.{alias.name}".split("."))
        if sub.with_suffix(".py").exists() or (sub / "__init__.py").exists():
            names.append(f"{node.module}.{alias.name}")
    return names


@pytest.mark.parametrize("path", on_the_path(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_on_the_jobs_path_imports_only_the_stdlib_and_the_path_itself(path: Path) -> None:
    rel = str(path.relative_to(PACKAGE))
    for node in run_time_imports(ast.parse(path.read_text(), str(path))):
        for name in imported_names(node):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or name in ALLOWED or (rel, name) in OUTSIDE:
                continue
            pytest.fail(f"{rel}:{node.lineno} imports {name}, which is neither the standard "
                        "library nor on the job's path")


def test_the_set_checked_is_the_one_the_architecture_names() -> None:
    assert "notifyd.pingch.entry" in ALLOWED
    assert "notifyd.spool.events" in ALLOWED
    assert "notifyd.watcher.loop" not in ALLOWED
    assert all(not name.startswith("notifyd.nodes") for name in ALLOWED)


@pytest.mark.parametrize("init", INITS)
def test_a_package_init_has_no_import_that_runs_on_loading(init: str) -> None:
    tree = ast.parse((PACKAGE / init).read_text())
    on_loading = run_time_imports(tree, in_functions=False)
    assert [ast.unparse(n) for n in on_loading] == []


@pytest.mark.parametrize("init", INITS)
def test_loading_a_package_loads_nothing_but_itself(init: str) -> None:
    package = dotted(PACKAGE / init)
    parts = package.split(".")
    itself = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}  # with the packages above it
    # No site (which loads os and more): this tree's package on a bare interpreter.
    code = (f"import sys; sys.path.insert(0, {str(PACKAGE.parent)!r}); before = set(sys.modules); "
            f"import {package}; print(' '.join(sorted(set(sys.modules) - before)))")
    p = subprocess.run([PY, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    assert p.returncode == 0, p.stderr
    assert set(p.stdout.split()) == itself


@pytest.mark.parametrize("path", on_the_path(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_on_the_jobs_path_does_not_load_future(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    assert not [n for n in run_time_imports(tree) if isinstance(n, ast.ImportFrom) and n.module == FUTURE]
