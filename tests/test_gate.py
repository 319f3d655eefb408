"""gate-contract on a real temporary git repository: a team's project with pinned weight files,
and pull requests that change them. Builds are ONNX fp32 only ([build] in the project file), so
each gate run builds two real bundles in well under a minute."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contracts.hashing import sha256_file

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "demo-project"
PROJECT = "coreml-contract.toml"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def _repin(repo: Path, weights: str) -> None:
    """Update the sha256 the project file pins for ``weights`` (a path relative to the repo)."""
    text = (repo / PROJECT).read_text()
    pattern = rf'(path = "{re.escape(weights)}"\nsha256 = ")[0-9a-f]{{64}}'
    (repo / PROJECT).write_text(re.sub(pattern, rf"\g<1>{sha256_file(repo / weights)}", text))


def _perturb(path: Path, relative: float, keys: tuple[str, ...] | None = None, seed: int = 0) -> None:
    from safetensors.numpy import load_file, save_file

    state = load_file(str(path))
    rng = np.random.default_rng(seed)
    for key in sorted(state):
        if keys is None or key in keys:
            values = state[key].astype(np.float64)
            state[key] = (values * (1 + relative * rng.choice([-1.0, 1.0], values.shape))).astype(np.float32)
    save_file(state, str(path))


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    """The example project, built as ONNX fp32 only and shipping it, committed on main."""
    repo = tmp_path_factory.mktemp("team") / "repo"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("weights", "artifacts"))
    subprocess.run([sys.executable, "make_weights.py"], cwd=repo, check=True, capture_output=True)
    text = (repo / PROJECT).read_text()
    text = re.sub(r'= "(coreml|onnx)-int8"', '= "onnx-fp32"', text)
    (repo / PROJECT).write_text(text + '\n[build]\nprecisions = ["fp32"]\nformats = ["onnx"]\n')
    (repo / ".gitignore").write_text("artifacts/\nreports/\n")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "trained weights v1")
    return repo


@pytest.fixture(scope="module")
def base_artifacts(repository, tmp_path_factory) -> Path:
    """main's bundles, built once with build-contract and reused by the gate runs that allow it."""
    out = tmp_path_factory.mktemp("base") / "artifacts"
    subprocess.run(
        [sys.executable, "-m", "converters.cli", str(out)], cwd=repository, check=True, capture_output=True
    )
    return out


@pytest.fixture
def branch(repository, request):
    """A pull-request branch off main; back to a clean main afterwards."""
    _git(repository, "checkout", "-q", "-b", request.node.name[:40], "main")
    yield repository
    _git(repository, "reset", "-q", "--hard")
    _git(repository, "clean", "-qfdx", "-e", "artifacts")
    _git(repository, "checkout", "-q", "main")


def _gate(repo: Path, monkeypatch, capsys, *extra: str) -> tuple[int, str, str]:
    from gate.cli import main

    monkeypatch.chdir(repo)
    code = main(["--base", "main", "--reports", str(repo / "reports"), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_changed_encoder_head_without_retrained_personality_fails(branch, monkeypatch, capsys):
    """The full path: base built in a git worktree from its own pinned files."""
    _perturb(branch / "weights" / "encoder-head.safetensors", 0.5, ("projection.weight",))
    _repin(branch, "weights/encoder-head.safetensors")
    _git(branch, "commit", "-qam", "new encoder head")
    code, out, err = _gate(branch, monkeypatch, capsys)
    assert code == 1, out + err
    assert "drift encoder_v1: breaking" in out
    assert "retrain personality_v1" in out
    assert out.endswith((branch / "reports" / "gate.md").read_text())
    assert (branch / "reports" / "drift-encoder_v1.md").is_file()
    assert "worktree" not in _git(branch, "worktree", "list").split("\n", 1)[-1]  # removed again


def test_personality_weights_changed_within_tolerance_pass(branch, base_artifacts, monkeypatch, capsys):
    _perturb(branch / "weights" / "personality.safetensors", 1e-7)
    _repin(branch, "weights/personality.safetensors")
    _git(branch, "commit", "-qam", "fine-tuned PersonalityModel")
    code, out, err = _gate(branch, monkeypatch, capsys, "--base-artifacts", str(base_artifacts))
    assert code == 0, out + err
    assert "gate-contract: PASS" in out
    assert re.search(r"drift personality_v1: (within tolerance|identical)", out)
    assert "drift encoder_v1: identical" in out


def test_weight_file_changed_without_its_sha256_exits_2(branch, monkeypatch, capsys):
    weights = branch / "weights" / "personality.safetensors"
    _perturb(weights, 1e-3)
    _git(branch, "commit", "-qam", "forgot to re-pin")
    code, out, err = _gate(branch, monkeypatch, capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert str(weights) in err and sha256_file(weights) in err


def test_unknown_base_ref_exits_2(repository, monkeypatch, capsys):
    from gate.cli import main

    monkeypatch.chdir(repository)
    assert main(["--base", "no-such-branch"]) == 2
    assert "no-such-branch" in capsys.readouterr().err
