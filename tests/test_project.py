"""The project file: parsing, discovery, pins, and the example project built and verified for real."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.hashing import sha256_file
from contracts.project import (
    PROJECT_FILE,
    ProjectError,
    find_project,
    known_contracts,
    load_project,
    locate_project,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "demo-project"
DIGEST = "0" * 64


def _write(directory: Path, text: str, name: str = PROJECT_FILE) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def _pinned(tmp_path: Path, content: bytes = b"weights") -> tuple[Path, str]:
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(content)
    return weights, sha256_file(weights)


def test_found_upward_and_in_pyproject(tmp_path):
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert find_project(nested) is None
    _write(tmp_path, "[project]\nname = 'x'\n", "pyproject.toml")
    assert find_project(nested) is None  # a pyproject.toml without the table is not a project
    _write(tmp_path, "[tool.coreml-contract]\noutput = 'out'\n", "pyproject.toml")
    assert find_project(nested) == tmp_path / "pyproject.toml"
    assert load_project(tmp_path / "pyproject.toml", known_contracts()).output == tmp_path / "out"
    _write(tmp_path / "a", "output = 'bundles'\n")
    assert find_project(nested) == tmp_path / "a" / PROJECT_FILE  # the nearest wins


def test_every_key_parses(tmp_path):
    weights, digest = _pinned(tmp_path)
    path = _write(
        tmp_path,
        f"""
output = "out"
seed = 3
tokens = {{ path = "w.safetensors", sha256 = "{digest}" }}
[weights.encoder_v1]
path = "w.safetensors"
sha256 = "{digest}"
[build]
precisions = ["fp32"]
formats = ["onnx"]
[ship.server]
encoder_v1 = "onnx-int8"
personality_v1 = "onnx-fp32"
[budgets.pipeline]
flip_rate = 0.004
[budgets.audit]
knn_recall10 = 0.9
[audit]
corpus = "texts.jsonl"
column = "body"
""",
    )
    project = load_project(path, known_contracts())
    project.verify_pins()
    assert project.output == tmp_path / "out" and project.seed == 3
    assert project.weights["encoder_v1"].path == weights and project.tokens.sha256 == digest
    assert project.precisions == ("fp32",) and project.formats == ("onnx",)
    assert project.ship == {"server": {"encoder_v1": "onnx-int8", "personality_v1": "onnx-fp32"}}
    assert project.pipeline_budgets == {"flip_rate": 0.004} and project.audit_budgets == {"knn_recall10": 0.9}
    assert project.corpus == tmp_path / "texts.jsonl" and project.corpus_column == "body"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("outptu = 'x'\n", r"unknown key\(s\) outptu"),
        ("[weights.encoder_v2]\npath = 'w'\nsha256 = '" + DIGEST + "'\n", "unknown model"),
        ("[ship.app]\nencoder_v1 = 'coreml-int4'\n", "not one of"),
        ("[weights.encoder_v1]\npath = 'w.safetensors'\n", "is not pinned"),
        ("[weights.encoder_v1]\npath = 'w.safetensors'\nsha256 = 'ABC'\n", "is not pinned"),
        ("[budgets.pipeline]\nflip_rate = 'low'\n", "must map metric names to numbers"),
        ("output = [\n", "not a readable TOML file"),
    ],
)
def test_malformed_project_is_one_clear_error(tmp_path, text, message):
    _pinned(tmp_path)
    with pytest.raises(ProjectError, match=message):
        load_project(_write(tmp_path, text), known_contracts())


def test_unpinned_weights_name_the_file_and_its_hash(tmp_path):
    weights, digest = _pinned(tmp_path)
    path = _write(tmp_path, "[weights.encoder_v1]\npath = 'w.safetensors'\n")
    with pytest.raises(ProjectError, match=f"{weights}.*is not pinned.*{digest}"):
        load_project(path, known_contracts())


@pytest.mark.parametrize("command", ["build-contract", "verify-contract"])
def test_changed_weight_file_exits_2_naming_file_and_both_hashes(tmp_path, monkeypatch, capsys, command):
    weights, digest = _pinned(tmp_path)
    _write(tmp_path, f"[weights.personality_v1]\npath = 'w.safetensors'\nsha256 = '{digest}'\n")
    weights.write_bytes(b"weightz")  # one byte changed
    monkeypatch.chdir(tmp_path)
    code = _main(command)([])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert str(weights) in err and digest in err and sha256_file(weights) in err
    weights.unlink()
    assert _main(command)([]) == 2 and "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_without_a_project_file_one_line_says_demo_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert locate_project(None, start=tmp_path) is None
    build = _main("build-contract")
    assert build(["--model", "personality_v1", "--formats", "onnx", "--precisions", "fp32"]) == 0
    err = capsys.readouterr().err
    assert f"no {PROJECT_FILE} found here or above: building demo weights (seed 0)" in err
    assert (tmp_path / "artifacts" / "personality_v1" / "personality_v1.fp32.onnx").is_file()


def _main(command: str):
    if command == "build-contract":
        from converters.cli import main
    else:
        from verify.cli import main
    return main


@pytest.mark.slow
def test_example_project_builds_and_verifies_with_no_arguments(tmp_path, monkeypatch, capsys):
    """The acceptance path: a fresh directory with the example project, the two commands bare."""
    project = tmp_path / "demo"
    shutil.copytree(EXAMPLE, project)
    subprocess.run([sys.executable, "make_weights.py"], cwd=project, check=True, capture_output=True)
    monkeypatch.chdir(project)
    from converters.cli import main as build
    from verify.cli import main as verify

    assert build([]) == 0
    assert verify(["--json", "report.json"]) == 0, capsys.readouterr().out[-3000:]
    out = capsys.readouterr().out
    for shipped in ("coreml-int8+coreml-int8", "onnx-int8+onnx-int8"):
        assert f"pipeline/{shipped}[logits]" in out
    assert "project-pins" in out
    manifest = (project / "artifacts" / "personality_v1" / "manifest.json").read_text()
    assert sha256_file(project / "weights" / "personality.safetensors") in manifest
