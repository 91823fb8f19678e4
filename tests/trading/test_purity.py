"""The rule of sumppump/trading/: pure. No module imports anyio, ib_async or the actors, and
none awaits (so nothing in it can interleave with another message)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sumppump.trading

FORBIDDEN = ("anyio", "ib_async", "sumppump.actors", "asyncio", "trio")
MODULES = sorted(Path(sumppump.trading.__file__).parent.glob("*.py"))


def _violations(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        found += [
            f"imports {n}" for n in names if n.split(".")[0] in FORBIDDEN or n.startswith(FORBIDDEN)
        ]
        if isinstance(node, ast.Await | ast.AsyncFunctionDef | ast.AsyncFor | ast.AsyncWith):
            found.append(f"{type(node).__name__} at line {node.lineno}")
    return found


def test_the_package_has_its_modules() -> None:
    assert {p.stem for p in MODULES} >= {"ledger", "gate", "changes", "stops", "account", "terms"}


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_no_trading_module_imports_io_or_awaits(path: Path) -> None:
    assert _violations(path) == []


def test_the_check_sees_what_it_forbids(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import anyio\nfrom sumppump.actors.runtime import Ref\nasync def f():\n    await g()\n"
    )
    assert len(_violations(bad)) == 4
