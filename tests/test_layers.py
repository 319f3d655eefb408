"""Issue 14, item 2: the one-way flow is enforced by import-linter (setup.cfg [importlinter])."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("contracts", "converters", "gate", "golden", "inference", "reference", "verify")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_layers_are_kept():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "3 kept, 0 broken" in done.stdout


def test_a_forbidden_import_breaks_them(tmp_path):
    """The verifier made to import a converter, in a copy of the sources: lint fails, naming it."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "data")
        )
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    compare = tmp_path / "verify" / "compare.py"
    compare.write_text(compare.read_text() + "\nfrom converters import bundle  # noqa: E402, F401\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout[-3000:]
    assert "verify imports no converter, reference, golden generation or inference BROKEN" in done.stdout
    assert "verify.compare -> converters.bundle" in done.stdout
