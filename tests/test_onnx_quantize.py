"""int8 and fp16 ONNX variants, built from real fp32 exports and held to their accuracy targets on
the goldens, with the verifier's protocol (length-sorted batches of 1, 7 and 64, padding trimmed).
Speed is measured by benchmarks/quant_search.py, not here."""

from __future__ import annotations

import json

import numpy as np
import pytest

BATCH_SIZES = (1, 7, 64)


@pytest.fixture(scope="module")
def encoder_onnx(encoder, tmp_path_factory):
    """fp32 export, its int8 and fp16 variants, and the torch goldens of the golden corpus."""
    from contracts import ENCODER_V1
    from converters import onnx_quantize
    from converters.onnx_export import export_onnx
    from golden.generate import encoder_golden, load_corpus

    root = tmp_path_factory.mktemp("encoder_onnx")
    example = encoder.tokenize(["a short text", "a somewhat longer example text"])
    fp32 = root / "fp32.onnx"
    export_onnx(encoder.model, ENCODER_V1, tuple(example.values()), fp32, {"k": "v"})
    recipe = onnx_quantize.quantize_encoder_int8(fp32, root / "int8.onnx")
    onnx_quantize.convert_onnx_fp16(fp32, root / "fp16.onnx")
    golden, _ = encoder_golden(encoder, load_corpus())
    return {"root": root, "recipe": recipe, "golden": golden}


@pytest.fixture(scope="module")
def personality_onnx(encoder_onnx, tmp_path_factory):
    import torch

    from contracts import PERSONALITY_V1
    from converters import onnx_quantize
    from converters.onnx_export import export_onnx
    from golden.generate import personality_golden
    from reference import load_personality

    root = tmp_path_factory.mktemp("personality_onnx")
    personality = load_personality()
    embeddings = encoder_onnx["golden"]["embedding"]
    golden, _ = personality_golden(personality, embeddings, [""] * len(embeddings))
    example = (torch.from_numpy(golden["embedding"][:2]),)
    export_onnx(personality.model, PERSONALITY_V1, example, root / "fp32.onnx", {"k": "v"})
    recipe = onnx_quantize.quantize_personality_int8(root / "fp32.onnx", root / "int8.onnx")
    return {"root": root, "recipe": recipe, "golden": golden}


def _session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _embeddings(path, golden: dict[str, np.ndarray], batch: int) -> np.ndarray:
    session, mask = _session(path), golden["attention_mask"]
    order = np.argsort(mask.sum(axis=1), kind="stable")
    out = np.zeros_like(golden["embedding"])
    for start in range(0, len(order), batch):
        rows = order[start : start + batch]
        length = max(int(mask[rows].sum(axis=1).max()), 1)
        feed = {"input_ids": golden["input_ids"][rows, :length], "attention_mask": mask[rows, :length]}
        out[rows] = session.run(["embedding"], feed)[0]
    return out


def _cosines(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    return (actual * expected).sum(1) / np.linalg.norm(actual, axis=1) / np.linalg.norm(expected, axis=1)


@pytest.mark.parametrize("batch", BATCH_SIZES)
def test_int8_encoder_meets_the_cosine_target(encoder_onnx, batch):
    golden = encoder_onnx["golden"]
    cos = _cosines(_embeddings(encoder_onnx["root"] / "int8.onnx", golden, batch), golden["embedding"])
    assert cos.min() >= 0.995, f"batch {batch}: cos_min {cos.min():.5f} (text {cos.argmin()})"


def test_int8_encoder_quantizes_every_transformer_matmul(encoder_onnx):
    import onnx

    recipe = encoder_onnx["recipe"]
    assert recipe["int8_matmuls"] == 36 and recipe["two_pass_matmuls"] == 36
    assert recipe["smoothed_inputs"] == 12 and recipe["split_inputs"] == 6
    model = onnx.load(str(encoder_onnx["root"] / "int8.onnx"))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMulInteger") == 36 + recipe["two_pass_matmuls"] and "Gemm" in ops  # head stays fp32


@pytest.mark.parametrize("variant", ["int8", "fp16"])
def test_variants_keep_the_interface(encoder_onnx, variant):
    import onnx

    source = onnx.load(str(encoder_onnx["root"] / "fp32.onnx"))
    path = encoder_onnx["root"] / f"{variant}.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(str(path), full_check=True)
    assert model.graph.input == source.graph.input and model.graph.output == source.graph.output
    assert [(p.key, p.value) for p in model.metadata_props] == [
        (p.key, p.value) for p in source.metadata_props
    ]
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "sequence"]


def test_fp16_encoder_is_close_to_the_goldens(encoder_onnx):
    golden = encoder_onnx["golden"]
    actual = _embeddings(encoder_onnx["root"] / "fp16.onnx", golden, 7)
    assert _cosines(actual, golden["embedding"]).min() >= 0.9999
    assert np.abs(actual - golden["embedding"]).max() < 1e-3


def test_int8_personality_keeps_decisions_and_top10(personality_onnx):
    golden = personality_onnx["golden"]
    session = _session(personality_onnx["root"] / "int8.onnx")
    logits = session.run(["logits"], {"embedding": golden["embedding"]})[0]
    expected = golden["logits"]
    flipped = float(((logits > 0) != (expected > 0)).mean())
    top = np.argsort(-logits, axis=1)[:, :10]
    top_expected = np.argsort(-expected, axis=1)[:, :10]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, top_expected, strict=True)])
    assert flipped <= 0.005, f"{flipped:.3%} of sigmoid decisions flipped"
    assert overlap >= 0.95, f"top-10 overlap {overlap:.3f}"
    assert personality_onnx["recipe"]["int8_matmuls"] == personality_onnx["recipe"]["two_pass_matmuls"] > 0


def test_calibration_corpus_is_separate_from_the_golden_corpus():
    from importlib import resources

    from golden.generate import load_corpus

    data = json.loads((resources.files("golden") / "data" / "calibration.json").read_text(encoding="utf-8"))
    assert 100 <= len(data["texts"]) <= 200 and data["description"]
    assert not set(data["texts"]) & set(load_corpus())
