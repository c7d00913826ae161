"""The house rules that a reader of the code relies on (issue 17): small modules, small functions,
no string-keyed service lookups on the hub context. Checked here so CI keeps them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "xiaozhi_hub"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_the_package_is_found() -> None:
    assert len(SOURCES) > 50


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_and_function_sizes(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    lines = text.count("\n") + (not text.endswith("\n") and bool(text))
    assert lines <= MAX_MODULE_LINES, f"{path.name}: {lines} lines (split it along responsibilities)"
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"  # type: ignore[operator]
            for node in ast.walk(ast.parse(text))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]  # type: ignore[operator]
    assert not long, f"{path.name}: functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"


def test_no_string_keyed_services_on_the_context() -> None:
    offenders = [str(p.relative_to(PACKAGE)) for p in SOURCES if "ctx.extras" in p.read_text(encoding="utf-8")]
    assert not offenders
