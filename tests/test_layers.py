"""The code's layers hold: import-linter's contracts (pyproject.toml, also `nox -s lint`) pass,
and the function-level imports that remain are the ones docs/architecture.md accounts for."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("vlae_models", "baselines", "benchmarks")


def test_the_layer_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout and "No import cycles among the modules" in done.stdout


def function_level_imports() -> dict[str, int]:
    """Per file, the import statements inside functions."""
    found: dict[str, int] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            lines = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines |= {
                        sub.lineno for sub in ast.walk(node)
                        if isinstance(sub, ast.Import | ast.ImportFrom)
                    }  # fmt: skip
            if lines:
                found[str(path.relative_to(REPO))] = len(lines)
    return found


def test_the_function_level_imports_left_are_the_ones_explained():
    found = function_level_imports()
    cli = sum(n for f, n in found.items() if f.startswith("benchmarks/cli/"))
    text = (REPO / "docs" / "architecture.md").read_text()
    assert f"{sum(found.values())} remain" in text, found
    assert f"(`benchmarks/cli/`, {cli})" in text
    explained = {f for f in found if f.startswith("benchmarks/cli/")}
    explained |= {f for f in found if f"`{f.split('/')[-1]}`" in text or f"`{f}`" in text}
    assert set(found) <= explained | {f for f in found if f.startswith("baselines/")}, found
