"""Golden vectors: a rich corpus, exact reproducibility, and agreement with the bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from golden.generate import encoder_golden, load_corpus, personality_golden, random_unit_embeddings
from golden.store import GoldenError, read_golden, write_golden
from reference import load_personality


def test_corpus_has_the_edge_cases(encoder):
    texts = load_corpus()
    assert len(texts) >= 64 and len(set(texts)) == len(texts)
    assert "" in texts and any(t.strip() == "" and t for t in texts) and any(len(t) == 1 for t in texts)
    assert any("\u4e00" <= ch <= "\u9fff" for t in texts for ch in t)  # CJK
    assert any("\u0590" <= ch <= "\u06ff" for t in texts for ch in t)  # Hebrew / Arabic
    assert any(ord(ch) >= 0x1F300 for t in texts for ch in t)  # emoji
    assert any(ch in "éèüñàç" for t in texts for ch in t)  # accented Latin
    lengths = [len(encoder.tokenizer(t)["input_ids"]) for t in texts]
    assert max(lengths) > 256  # one text is truncated


def test_regeneration_is_bit_identical(encoder, tmp_path):
    texts = load_corpus()
    for target in ("a", "b"):
        tensors, info = encoder_golden(encoder, texts)
        write_golden(tmp_path / target, tensors, info)
        personality = personality_golden(load_personality(), tensors["embedding"], texts)
        write_golden(tmp_path / target / "p", *personality)
    for name in ("golden.safetensors", "golden.json", "p/golden.safetensors", "p/golden.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_bundle_goldens_match_the_reference(bundles, encoder):
    stored = read_golden(bundles / "encoder_v1" / "golden")
    fresh, _ = encoder_golden(encoder, stored.info["texts"])
    for name, array in fresh.items():
        assert np.array_equal(stored.tensors[name], array), name
    personality = read_golden(bundles / "personality_v1" / "golden")
    assert personality.rows == len(stored.info["texts"]) + 64
    assert np.array_equal(personality.tensors["embedding"][: stored.rows], stored.tensors["embedding"])


def test_random_inputs_are_unit_norm_and_seeded():
    a, b = random_unit_embeddings(), random_unit_embeddings()
    assert a.shape == (64, 1536) and np.array_equal(a, b)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-6)


def test_trimmed_batches_drop_only_padding(bundles):
    golden = read_golden(bundles / "encoder_v1" / "golden")
    batch = golden.batch(["input_ids", "attention_mask"], np.arange(0, 3))
    assert batch["attention_mask"].shape[1] == golden.tensors["attention_mask"][:3].sum(axis=1).max()


def test_missing_golden_files(tmp_path):
    with pytest.raises(GoldenError, match="missing"):
        read_golden(tmp_path)


def test_golden_freshness_key_follows_what_determines_the_goldens(tmp_path):
    """Comments and docstrings do not make goldens stale; the golden corpus and the default token
    list do (issue 13, class 6)."""
    import shutil

    from contracts.hashing import golden_inputs_sha256

    root = Path(__file__).resolve().parent.parent
    roots = {name: tmp_path / name for name in ("reference", "golden")}
    for name, target in roots.items():
        shutil.copytree(root / name, target, ignore=shutil.ignore_patterns("__pycache__"))
    before = golden_inputs_sha256(roots)

    store = roots["golden"] / "store.py"
    store.write_text(
        store.read_text().replace('"""Golden files', '"""Golden files (reworded)', 1) + "\n# a comment\n"
    )
    calibration = roots["golden"] / "data" / "calibration.json"
    calibration.write_text(calibration.read_text() + " ")
    assert golden_inputs_sha256(roots) == before

    for data in (
        roots["golden"] / "data" / "corpus.json",
        roots["reference"] / "data" / "personality-tokens.json",
    ):
        original = data.read_text()
        data.write_text(original + "\n")
        assert golden_inputs_sha256(roots) != before, data.name
        data.write_text(original)
    assert golden_inputs_sha256(roots) == before
    store.write_text(store.read_text().replace("GOLDEN_FORMAT = 1", "GOLDEN_FORMAT = 2"))
    assert golden_inputs_sha256(roots) != before  # code that runs
