"""Issue 14, item 1: verify-contract runs where only the verify install is present (no torch,
transformers or converters' dependencies); build-contract there says which extra it needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _without_build_extra(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "tests" / "without_build_extra.py"), *map(str, args)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_verify_needs_no_build_dependencies(bundles):
    """Every check but the encoder's numerics (covered by the same backends on the personality
    bundle): structure, content, graph, fingerprint, tokenizer, pinning; then numerics."""
    structure = _without_build_extra("verify-contract", bundles, "--no-numerics", "--quiet")
    assert structure.returncode == 0, structure.stdout[-3000:] + structure.stderr[-3000:]
    assert "build-only modules loaded: none" in structure.stdout
    numerics = _without_build_extra("verify-contract", bundles / "personality_v1", "--quiet")
    assert numerics.returncode == 0, numerics.stdout[-3000:] + numerics.stderr[-3000:]
    assert "build-only modules loaded: none" in numerics.stdout


def test_build_without_the_build_extra_names_it(tmp_path):
    done = _without_build_extra("build-contract", tmp_path / "out")
    assert done.returncode == 2
    [line] = [line for line in done.stderr.splitlines() if line.strip()]
    assert line.startswith("build-contract: error: converting needs the build extra (torch, ")
    assert "pip install 'coreml-contract[build]'" in line and not (tmp_path / "out").exists()
