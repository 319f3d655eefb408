"""inference.encode (the toolkit's encode helper) and the benchmark's FLOP counter, tables and docs block.

Performance itself is not asserted here: timings on a shared machine make flaky tests.
``python -m benchmarks`` measures it (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.commands import parse_build_log
from benchmarks.flops import FFN, HIDDEN, LAYERS, encoder_flops, gemm_flops
from benchmarks.report import BEGIN, END, markdown_table, targets, write_doc

# --------------------------------------------------------------------------------------------
# inference.encode on the default bundles
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder_bundle(bundles):
    return bundles / "encoder_v1"


@pytest.fixture(scope="module")
def golden(encoder_bundle):
    from golden.store import read_golden

    return read_golden(encoder_bundle / "golden")


@pytest.mark.slow
def test_encode_texts_matches_the_goldens(encoder_bundle, golden):
    from inference.encode import encode_texts

    texts = golden.info["texts"]
    embeddings = encode_texts(encoder_bundle, texts)
    assert embeddings.shape == (len(texts), 1536) and embeddings.dtype == np.float32
    assert np.abs(embeddings - golden.tensors["embedding"]).max() <= 1e-5


@pytest.mark.slow
def test_encode_texts_tokenizes_like_the_reference(encoder_bundle, golden):
    from inference.encode import BundleEncoder

    ids = BundleEncoder(encoder_bundle).token_ids(golden.info["texts"])
    mask = golden.tensors["attention_mask"]
    for row, tokens in enumerate(ids):
        assert tokens == golden.tensors["input_ids"][row, : mask[row].sum()].tolist()


@pytest.mark.slow
def test_encode_texts_is_order_independent(encoder_bundle, golden):
    from inference.encode import BundleEncoder

    texts = golden.info["texts"]
    encoder = BundleEncoder(encoder_bundle)
    ordered = encoder.encode(texts)
    permutation = np.random.default_rng(0).permutation(len(texts))
    shuffled = encoder.encode([texts[i] for i in permutation])
    np.testing.assert_allclose(shuffled, ordered[permutation], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_encode_texts_pads_each_batch_to_its_longest_row(encoder_bundle, golden):
    from inference.encode import BundleEncoder

    texts = golden.info["texts"]
    batches = BundleEncoder(encoder_bundle).batches(texts, 7)
    lengths = golden.tensors["attention_mask"].sum(axis=1)
    assert sorted(np.concatenate([rows for rows, _ in batches]).tolist()) == list(range(len(texts)))
    previous = 0
    for rows, inputs in batches:
        assert len(rows) <= 7 and inputs["input_ids"].dtype == np.int32
        assert inputs["input_ids"].shape[1] == lengths[rows].max() >= previous
        assert (inputs["attention_mask"].sum(axis=1) == lengths[rows]).all()
        previous = inputs["input_ids"].shape[1]


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [0, 65])
def test_encode_texts_keeps_to_the_contract_batch_range(encoder_bundle, batch_size):
    from inference.encode import encode_texts

    with pytest.raises(ValueError, match="outside the contract range 1..64"):
        encode_texts(encoder_bundle, ["a text"], batch_size=batch_size)


@pytest.mark.slow
def test_encode_texts_truncates_to_256_tokens_and_accepts_no_texts(encoder_bundle):
    from inference.encode import BundleEncoder

    encoder = BundleEncoder(encoder_bundle)
    assert len(encoder.token_ids(["word " * 400])[0]) == 256
    assert encoder.encode([]).shape == (0, 1536)


def test_encode_texts_refuses_a_core_ml_artifact(tmp_path):
    from inference.encode import BundleEncoder

    with pytest.raises(ValueError, match="ONNX artifacts only"):
        BundleEncoder(tmp_path, "coreml-fp32")


# --------------------------------------------------------------------------------------------
# FLOPs, tables, targets, build log, docs block (fast)
# --------------------------------------------------------------------------------------------


def test_flops_of_one_token():
    linear = 2 * (4 * 384 * 384 + 2 * 384 * 1536)  # Q, K, V, attention output; FFN in and out
    attention = 2 * 2 * 1 * 1 * 384  # Q·Kᵀ and softmax·V over all 12 heads of 32
    head = 2 * 384 * 1536
    assert (LAYERS, HIDDEN, FFN) == (6, 384, 1536)
    assert encoder_flops([(1, 1)]) == 6 * (linear + attention) + head == 22_422_528


def test_flops_scale_with_rows_and_length():
    assert encoder_flops([(3, 10)]) == 3 * encoder_flops([(1, 10)])
    assert encoder_flops([(1, 10), (2, 5)]) == encoder_flops([(1, 10)]) + encoder_flops([(2, 5)])
    # attention is quadratic in length, the rest linear
    quadratic = encoder_flops([(1, 20)]) - 2 * encoder_flops([(1, 10)]) + encoder_flops([(1, 0)])
    assert quadratic == 6 * 4 * 384 * (20 * 20 - 2 * 10 * 10)
    assert gemm_flops(4) == 128


def test_markdown_table():
    table = markdown_table(("a", "b"), [(1, None), ("x|y", 2.5)])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 |  |", "| x\\|y | 2.5 |"]
    with pytest.raises(ValueError, match="2 columns"):
        markdown_table(("a", "b"), [(1,)])


def test_targets_met_not_met_and_not_measured():
    results = {
        "encoder": {"rows": {"onnx-fp32": {"ratio": 1.6}, "onnx-int8": {"ratio": 2.6, "cos_min": 0.994}}},
        "build": {"wall_s": 181.0},
        "mil_vs_ort": [{"model": "encoder_v1", "ratio": 1.9}, {"model": "personality_v1", "ratio": 2.5}],
    }
    verdicts = {t["target"].split(" ≤ ")[0].split(" ≥ ")[0]: t for t in targets(results)}
    fp32 = verdicts["ONNX fp32 encoder"]
    assert fp32["met"] is True and fp32["measured"] == "1.60×"
    assert verdicts["ONNX int8 encoder"]["met"] is False  # fast enough, but cos_min below 0.995
    assert verdicts["full build of both bundles, all variants"]["met"] is False
    assert verdicts["verify-contract on both bundles"]["met"] is None
    assert verdicts["MIL executor"]["met"] is False  # 2.5x > 1.5x (issue 17)
    assert not any("bf16" in name or "batch 7" in name for name in verdicts)  # not measured: not listed


def test_the_bf16_anchor_and_batch_invariance_targets():
    int8 = {"ratio": 2.6, "cos_min": 0.998, "vs_bf16": 1.1, "batch_invariance": 0.99999}
    results = {"encoder": {"rows": {"onnx-int8": int8}}}
    found = {t["target"]: t for t in targets(results)}
    bf16 = found["ONNX int8 encoder ≥ 1.2× torch under bf16 autocast, golden corpus"]
    assert bf16["met"] is False and bf16["measured"] == "1.10×"
    invariance = next(t for name, t in found.items() if "cosine 0.9999" in name)
    assert invariance["met"] is True and invariance["measured"] == "0.99999000"
    assert not any("held-out" in name for name in found)  # not measured: not listed


def test_targets_on_the_held_out_corpus_are_judged_on_its_own_numbers():
    golden = {"onnx-fp32": {"ratio": 1.2}, "onnx-int8": {"ratio": 2.6, "cos_min": 0.998, "vs_bf16": 1.3}}
    held_out = {"onnx-fp32": {"ratio": 0.9}, "onnx-int8": {"ratio": 2.6, "cos_min": 0.99, "vs_bf16": 1.3}}
    results = {"encoder": {"rows": golden}, "encoder_held_out": {"rows": held_out}}
    found = {t["target"]: t["met"] for t in targets(results)}
    assert found[
        "ONNX fp32 encoder ≥ 1.0× sentence-transformers torch (issue 17; issue 8 asked 1.5×), golden corpus"
    ]
    assert not found[
        "ONNX fp32 encoder ≥ 1.0× sentence-transformers torch (issue 17; issue 8 asked 1.5×), held-out corpus"
    ]
    assert found["ONNX int8 encoder ≥ 2.5× sentence-transformers torch, cos_min ≥ 0.995, golden corpus"]
    assert not found["ONNX int8 encoder ≥ 2.5× sentence-transformers torch, cos_min ≥ 0.995, held-out corpus"]
    assert found["ONNX int8 encoder ≥ 1.2× torch under bf16 autocast, held-out corpus"]


def test_parse_build_log():
    log = "\n".join(
        [
            "reference encoder on 80 golden texts (17.6 s)",
            "encoder_v1 [2/8] coreml-fp32 → encoder_v1.fp32.mlpackage (9.3 s)",
            "personality_v1 [10/10] contract, tokens, manifest (0.2 s)",
            "some other line",
            "done in 111.5 s",
        ]
    )
    parsed = parse_build_log(log)
    assert parsed["reference_s"] == 17.6 and parsed["done_s"] == 111.5
    per_model = (
        "encoder_v1 reference on 80 golden rows (11.4 s)\npersonality_v1 reference on 144 golden rows (0.5 s)"
    )
    assert parse_build_log(per_model)["reference_s"] == pytest.approx(11.9)  # what builds print now
    assert parsed["steps"] == [
        {"bundle": "encoder_v1", "step": "coreml-fp32", "seconds": 9.3},
        {"bundle": "personality_v1", "step": "contract, tokens, manifest", "seconds": 0.2},
    ]


def test_write_doc_replaces_only_the_generated_block(tmp_path):
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\nIntro kept.\n")
    write_doc(doc, "first table\n")
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\n" + BEGIN) and text.endswith("Intro kept.\n")
    assert "first table" in text
    doc.write_text(text + "\n## Notes\n\nhand-written, kept\n")
    write_doc(doc, "second table\n")
    text = doc.read_text()
    assert "first table" not in text and "second table" in text
    assert text.count(BEGIN) == text.count(END) == 1
    assert "Intro kept." in text and "hand-written, kept" in text


def test_gemm_limits_run_the_kernels_they_name():
    """The machine's integer and bf16 GEMM rates come from real onnxruntime and torch products."""
    import torch

    from benchmarks.flops import bf16_gemm, integer_gemm

    (unsigned,) = integer_gemm(size=16)()
    (signed,) = integer_gemm(size=16, signed_weights=True)()
    assert unsigned.shape == signed.shape == (16, 16) and unsigned.dtype == signed.dtype == np.int32
    product = bf16_gemm(size=16)()
    assert product.shape == (16, 16) and product.dtype == torch.bfloat16
