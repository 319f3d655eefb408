"""Build robustness: a build killed at any point leaves the previous bundle intact and no visible
partial bundle; building twice gives identical goldens and artifact content hashes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.hashing import tree_sha256
from tests.helpers import run_verify

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def _build_until(output: Path, marker: str) -> str:
    """Start build-contract for personality_v1, SIGKILL it once ``marker`` is printed."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "converters.cli", str(output), "--model", "personality_v1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    seen = []
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            process.send_signal(signal.SIGKILL)
            break
    process.wait(timeout=120)
    assert process.returncode == -signal.SIGKILL, "".join(seen)
    return "".join(seen)


@pytest.mark.parametrize("marker", ["[2/10]", "[9/10]"], ids=["first-artifact", "late"])
def test_killed_build_keeps_the_previous_bundle(bundles, tmp_path, capsys, marker):
    output = tmp_path / "artifacts"
    shutil.copytree(bundles / "personality_v1", output / "personality_v1")
    before = tree_sha256(output / "personality_v1")
    _build_until(output, marker)
    assert tree_sha256(output / "personality_v1") == before
    visible = [p.name for p in output.iterdir() if not p.name.startswith(".")]
    assert visible == ["personality_v1"]  # a killed build's staging directory is hidden ...
    code, out, err = run_verify(capsys, output, "--no-numerics", "--quiet")
    assert code == 0, out + err  # ... and ignored by verify-contract


def test_next_build_removes_a_killed_builds_leftovers(tmp_path):
    from converters.atomic import staged_directory

    final = tmp_path / "personality_v1"
    leftover = tmp_path / ".personality_v1.build-dead0000"
    leftover.mkdir()
    (leftover / "contract.json").write_text("half")
    with staged_directory(final) as staging:
        (staging / "contract.json").write_text("whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["personality_v1"]


def test_rebuild_is_identical_in_goldens_and_content_hashes(bundles, tmp_path):
    from converters.bundle import BuildOptions, build_bundles

    rebuilt = build_bundles(tmp_path, ("personality_v1",), BuildOptions())[0]
    first = json.loads((bundles / "personality_v1" / "manifest.json").read_text())
    second = json.loads((rebuilt / "manifest.json").read_text())
    golden = {k: v for k, v in first["files"].items() if k.startswith("golden/")}
    assert golden and golden == {k: v for k, v in second["files"].items() if k.startswith("golden/")}
    content = {key: entry["content_sha256"] for key, entry in first["artifacts"].items()}
    assert content == {key: entry["content_sha256"] for key, entry in second["artifacts"].items()}
    # the packaging itself is not byte-identical: Core ML stamps a conversion date
    differing = {k for k in first["files"] if first["files"][k] != second["files"].get(k)}
    assert differing and all(".mlpackage/" in k for k in differing)
