"""diff-contract on real rebuilds of the encoder bundle: identical, within tolerance, breaking."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ONNX_FP32 = dict(precisions=("fp32",), formats=("onnx",))


def _build(output, **options):
    from converters.bundle import BuildOptions, build_bundles

    return build_bundles(output, ("encoder_v1",), BuildOptions(**ONNX_FP32, **options))[0]


def _diff(capsys, old, new, tmp_path) -> tuple[int, dict, str]:
    from verify.diff_cli import main

    report = tmp_path / "diff.json"
    code = main([str(old), str(new), "--json", str(report)])
    out = capsys.readouterr().out
    return code, json.loads(report.read_text()), out


def test_identical_rebuild(bundles, tmp_path, capsys):
    rebuilt = _build(tmp_path / "same")
    code, report, out = _diff(capsys, bundles / "encoder_v1", rebuilt, tmp_path)
    assert (code, report["verdict"]) == (0, "identical"), out
    from golden.store import read_golden

    golden = read_golden(bundles / "encoder_v1" / "golden").tensors
    unique = {golden["input_ids"][row].tobytes() for row in range(len(golden["input_ids"]))}
    assert report["rows"] == len(unique) == 79  # "" and a whitespace-only text tokenize alike
    assert all(o["stats"]["max_abs"] == 0.0 for o in report["outputs"])


def test_reseeded_projection_is_breaking(bundles, tmp_path, capsys):
    rebuilt = _build(tmp_path / "reseeded", seed=1)
    code, report, out = _diff(capsys, bundles / "encoder_v1", rebuilt, tmp_path)
    assert (code, report["verdict"]) == (20, "breaking"), out
    assert "breaking: the embedding space changed; retrain PersonalityModel" in out
    outputs = {o["output"]: o for o in report["outputs"]}
    assert outputs["sentence_embedding"]["verdict"] == "identical"  # MiniLM itself did not change
    assert outputs["embedding"]["stats"]["min_cosine"] < 0.5
    assert outputs["embedding"]["stats"]["nn_agreement"] < 0.9
    assert any("encoder fingerprint" in note for note in report["notes"])


def test_tiny_perturbation_is_within_tolerance(bundles, tmp_path, capsys):
    from safetensors.torch import save_file

    from reference.encoder import ProjectionHead
    from reference.weights import demo_state_dict

    state = demo_state_dict(ProjectionHead(), seed=0)
    weight = state["projection.weight"].numpy()
    signs = np.random.default_rng(7).choice([-1.0, 1.0], size=weight.shape)
    state["projection.weight"] = state["projection.weight"] * (1 + 1e-7 * signs).astype(np.float32)
    weights = tmp_path / "head.safetensors"
    save_file(state, str(weights))
    rebuilt = _build(tmp_path / "perturbed", weights={"encoder_v1": weights})
    code, report, out = _diff(capsys, bundles / "encoder_v1", rebuilt, tmp_path)
    assert (code, report["verdict"]) == (10, "within tolerance"), out
    embedding = next(o for o in report["outputs"] if o["output"] == "embedding")
    assert 0 < embedding["stats"]["max_abs"] < 1e-5 and embedding["stats"]["nn_agreement"] == 1.0


def test_unusable_input_exits_2(bundles, capsys):
    from verify.diff_cli import main

    assert main([str(bundles / "encoder_v1"), str(bundles / "personality_v1")]) == 2
    assert capsys.readouterr().err.startswith(
        "diff-contract: error: OLD is encoder_v1 but NEW is personality_v1"
    )
    assert main([str(bundles / "encoder_v1"), "/does/not/exist"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
