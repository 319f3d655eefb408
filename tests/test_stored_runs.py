"""Issue 15, item 2: stored runs. ``--save-outputs`` keeps every artifact's golden outputs,
``--load-outputs`` judges them again without running a model, ``--contract-overrides`` tries
other bounds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import failing_checks, run_verify

pytestmark = pytest.mark.slow
ONLY = ("--only", "onnx-fp32,onnx-int8")


@pytest.fixture(scope="module")
def saved(bundles, tmp_path_factory):
    """The encoder bundle's ONNX fp32 and int8 verified once, their runs stored."""
    from verify.cli import main

    root = tmp_path_factory.mktemp("runs")
    report = root / "fresh.json"
    assert (
        main(
            [str(bundles / "encoder_v1"), *ONLY, "--save-outputs", str(root / "runs"), "--json", str(report)]
        )
        == 0
    )
    return root / "runs", json.loads(report.read_text())


def _numerics(report: dict) -> dict[str, dict]:
    return {c["name"]: c for b in report["bundles"] for c in b["checks"] if "/numerics[" in c["name"]}


def test_loaded_runs_are_judged_as_the_fresh_ones(saved, bundles, tmp_path, capsys):
    runs, fresh = saved
    assert sorted(p.name for p in (runs / "encoder_v1").iterdir()) == [
        "onnx-fp32.safetensors",
        "onnx-int8.safetensors",
    ]
    report = tmp_path / "loaded.json"
    code, out, err = run_verify(
        capsys, bundles / "encoder_v1", *ONLY, "--load-outputs", runs, "--json", report
    )
    assert code == 0, out + err
    loaded, before = _numerics(json.loads(report.read_text())), _numerics(fresh)
    assert loaded.keys() == before.keys() and loaded
    for name, check in loaded.items():
        assert check["details"]["per_batch"] == before[name]["details"]["per_batch"], name
        assert check["details"]["backend"] == before[name]["details"]["backend"] + " (stored)"
    self_goldens = [
        c for b in json.loads(report.read_text())["bundles"] for c in b["checks"] if "/self[" in c["name"]
    ]
    assert self_goldens and all(c["status"] == "pass" for c in self_goldens)


def test_the_judge_reads_the_stored_outputs_not_a_fresh_run(saved, bundles, tmp_path, capsys):
    """Stored int8 embeddings nudged off the reference: the loaded run fails where the bundle passes."""
    import shutil

    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    runs, _ = saved
    edited = tmp_path / "runs"
    shutil.copytree(runs, edited)
    path = edited / "encoder_v1" / "onnx-int8.safetensors"
    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    for key in [k for k in tensors if k.endswith("/embedding")]:
        noise = np.random.default_rng(0).standard_normal(tensors[key].shape).astype(np.float32)
        tensors[key] = tensors[key] + 0.02 * noise
    save_file(tensors, str(path), metadata=metadata)
    report = tmp_path / "r.json"
    code, out, err = run_verify(
        capsys, bundles / "encoder_v1", *ONLY, "--load-outputs", edited, "--json", report
    )
    assert code == 1, out + err
    assert "onnx-int8/numerics[embedding]" in failing_checks(report)
    assert "onnx-fp32/numerics[embedding]" not in failing_checks(report)


def test_a_tighter_override_fails_and_a_looser_one_passes(saved, bundles, tmp_path, capsys):
    runs, fresh = saved
    worst = _numerics(fresh)["onnx-int8/numerics[embedding]"]["details"]["bounds"]["min_cosine"]["value"]
    for limit, expected in ((min(1.0, worst + 1e-4), 1), (worst - 1e-3, 0)):
        overrides = tmp_path / f"o{expected}.json"
        overrides.write_text(json.dumps({"encoder_v1": {"onnx-int8": {"embedding": {"min_cosine": limit}}}}))
        report = tmp_path / f"r{expected}.json"
        code, out, err = run_verify(
            capsys,
            bundles / "encoder_v1",
            *ONLY,
            "--load-outputs",
            runs,
            "--contract-overrides",
            overrides,
            "--json",
            report,
        )
        assert code == expected, out + err
        check = _numerics(json.loads(report.read_text()))["onnx-int8/numerics[embedding]"]
        assert check["details"]["bounds"]["min_cosine"]["limit"] == pytest.approx(limit)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ("{", "--contract-overrides"),
        ('{"encoder_v9": {}}', "unknown contract 'encoder_v9'"),
        ('{"encoder_v1": {"onnx-int8": {"embedding": {"min_cosin": 0.9}}}}', "'min_cosin'"),
        ('{"encoder_v1": {"onnx-int8": {"logits": {"min_cosine": 0.9}}}}', "unknown output 'logits'"),
    ],
)
def test_bad_overrides_exit_2_in_one_line(bundles, tmp_path, capsys, overrides, message):
    path = tmp_path / "o.json"
    path.write_text(overrides)
    code, out, err = run_verify(capsys, bundles / "encoder_v1", "--contract-overrides", path)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


def test_missing_stored_runs_fail_the_artifact_and_a_missing_directory_exits_2(bundles, tmp_path, capsys):
    code, _, err = run_verify(capsys, bundles / "encoder_v1", "--load-outputs", tmp_path / "nowhere")
    assert code == 2 and "no such directory" in err
    (tmp_path / "empty").mkdir()
    report = tmp_path / "r.json"
    code, out, err = run_verify(
        capsys, bundles / "encoder_v1", *ONLY, "--load-outputs", tmp_path / "empty", "--json", report
    )
    assert code == 1 and "onnx-int8/numerics" in failing_checks(report), out + err
