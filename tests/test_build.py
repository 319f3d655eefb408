"""build-contract: the bundle layout, its manifest, clear errors, atomic replacement."""

from __future__ import annotations

import json

import coremltools as ct
import onnx
import pytest

from contracts import ENCODER_V1, PERSONALITY_V1
from converters.atomic import staged_directory
from converters.cli import main as build_main

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("contract", [ENCODER_V1, PERSONALITY_V1], ids=lambda c: c.name)
def test_bundle_layout(bundles, contract):
    root = bundles / contract.name
    for artifact in contract.artifacts:
        assert (root / artifact.filename).exists(), artifact.filename
    assert (root / "contract.json").is_file() and (root / "manifest.json").is_file()
    assert (root / "golden" / "golden.safetensors").is_file()
    manifest = json.loads((root / "manifest.json").read_text())
    trained = {contract.training.key} if contract.training else set()
    assert set(manifest["artifacts"]) == {a.key for a in contract.artifacts} | trained
    assert all(entry["size_bytes"] > 1_000_000 for entry in manifest["artifacts"].values())
    assert {"coremltools", "torch", "onnx", "onnxruntime"} <= set(manifest["tools"])
    assert manifest["seed"] == 0 and manifest["sources"]["demo_weights"] is True
    assert "demo weights (seed 0" in manifest["weights_provenance"]


def test_encoder_bundle_ships_the_tokenizer(bundles):
    files = {p.name for p in (bundles / "encoder_v1" / "tokenizer").iterdir()}
    assert {"tokenizer.json", "vocab.txt"} <= files


def test_personality_bundle_records_the_encoder_it_consumes(bundles):
    encoder = json.loads((bundles / "encoder_v1" / "manifest.json").read_text())
    personality = json.loads((bundles / "personality_v1" / "manifest.json").read_text())
    assert personality["encoder_fingerprint"] == encoder["encoder_fingerprint"]
    assert len(json.loads((bundles / "personality_v1" / "personality-tokens.json").read_text())) == 325


@pytest.mark.parametrize("contract", [ENCODER_V1, PERSONALITY_V1], ids=lambda c: c.name)
def test_every_artifact_declares_the_contract_ranges(bundles, contract):
    for artifact in contract.artifacts:
        path = bundles / contract.name / artifact.filename
        if artifact.format == "coreml":
            spec = ct.utils.load_spec(str(path))
            array = spec.description.input[0].type.multiArrayType
            if artifact.enumerated is not None:  # batch 1 at each enumerated length, no range
                shapes = [tuple(s.shape) for s in array.enumeratedShapes.shapes]
                assert (
                    shapes == [(1, size) for size in artifact.enumerated.sizes]
                    and not array.shapeRange.sizeRanges
                )
            else:
                assert (
                    array.shapeRange.sizeRanges[0].lowerBound,
                    array.shapeRange.sizeRanges[0].upperBound,
                ) == (1, 64)
            assert spec.WhichOneof("Type") == "mlProgram" and spec.specificationVersion == 8
        else:
            model = onnx.load(str(path))
            onnx.checker.check_model(model, full_check=True)
            assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_bad_tokens_file_exits_2_and_builds_nothing(tmp_path, capsys):
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(["a", "b"]))
    assert build_main([str(tmp_path / "out"), "--tokens", str(tokens)]) == 2
    assert "2 tokens, expected 325" in _one_line_error(capsys)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_bad_weights_file_exits_2(tmp_path, capsys):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"garbage")
    code = build_main(
        [str(tmp_path / "out"), "--model", "personality_v1", "--personality-weights", str(weights)]
    )
    assert code == 2 and "not a readable safetensors" in _one_line_error(capsys)


def test_unknown_precision_exits_2(tmp_path, capsys):
    assert build_main([str(tmp_path), "--precisions", "fp8"]) == 2
    assert "fp8" in _one_line_error(capsys)


def test_failed_build_keeps_the_previous_bundle(tmp_path):
    final = tmp_path / "encoder_v1"
    final.mkdir()
    (final / "contract.json").write_text("previous")
    with pytest.raises(RuntimeError), staged_directory(final) as staging:
        (staging / "contract.json").write_text("half-written")
        raise RuntimeError("conversion failed")
    assert (final / "contract.json").read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["encoder_v1"]


def test_successful_build_replaces_the_bundle_whole(tmp_path):
    final = tmp_path / "encoder_v1"
    final.mkdir()
    (final / "stale.txt").write_text("old")
    with staged_directory(final) as staging:
        (staging / "contract.json").write_text("new")
    assert sorted(p.name for p in final.iterdir()) == ["contract.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["encoder_v1"]
