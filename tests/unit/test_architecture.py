"""The architecture holds: the import contract (pyproject's [tool.importlinter]) is kept,
it catches a domain calling up into another's services, and imports hidden inside
functions say why."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=project,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(project), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )


def _copy_of_the_code(into: Path) -> Path:
    for name in ("app", "workers", "migrations"):
        shutil.copytree(ROOT / name, into / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", into / "pyproject.toml")
    return into


def test_the_import_contract_is_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_the_contract_breaks_when_a_domain_calls_up_into_another(tmp_path: Path) -> None:
    project = _copy_of_the_code(tmp_path)
    # The booking domain calling the payments services to cause a side effect (a refund),
    # instead of publishing an event that payments handles.
    cancel = project / "app" / "booking" / "services" / "cancel.py"
    cancel.write_text(
        cancel.read_text() + "\nfrom app.payments.services.refunds import owe_refund  # noqa\n"
    )
    result = _lint_imports(project)
    assert result.returncode != 0
    assert "app.booking is not allowed to import app.payments" in result.stdout
    assert "app.booking.services.cancel -> app.payments.services.refunds" in result.stdout


def _unexplained_imports_in_functions(path: Path) -> list[str]:
    """Imports inside a function whose import block has no comment just above it."""
    lines = path.read_text().splitlines()
    found = []
    for function in ast.walk(ast.parse("\n".join(lines))):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(function):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            above = node.lineno - 2
            # Walk up over the rest of this block of imports to the line before it.
            while above >= 0 and lines[above].strip().startswith(("import ", "from ")):
                above -= 1
            if above < 0 or not lines[above].strip().startswith("#"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_import_inside_a_function_says_why() -> None:
    unexplained = [
        place
        for package in ("app", "workers")
        for path in sorted((ROOT / package).rglob("*.py"))
        for place in _unexplained_imports_in_functions(path)
    ]
    assert unexplained == []
