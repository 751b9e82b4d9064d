"""Structure rules of the source tree (docs/architecture.md): short functions and modules, and the two
systems never importing each other (what they share lives in radqc_common)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_FUNCTION_LINES = 120
MAX_MODULE_LINES = 600
PACKAGES = ("echoquality", "nhs_lookup", "radqc_common")


def _modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (SRC / pkg).rglob("*.py"))


def _imported(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_module_and_function_sizes(path: Path) -> None:
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name} has over {MAX_MODULE_LINES} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines in {path.name}: {long}"


def test_packages_do_not_import_each_other() -> None:
    forbidden = {"echoquality": "nhs_lookup", "nhs_lookup": "echoquality"}
    bad = []
    for path in _modules():
        pkg = path.relative_to(SRC).parts[0]
        imported = _imported(ast.parse(path.read_text()))
        if pkg == "radqc_common":
            bad += [f"{path}: imports {n}" for n in imported & {"echoquality", "nhs_lookup"}]
        elif forbidden[pkg] in imported:
            bad.append(f"{path}: imports {forbidden[pkg]}")
    assert not bad, bad
