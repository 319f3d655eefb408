"""The corpus-wide kNN sample: uniform, mergeable, and exact against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from verify.neighbours import (
    BlockNeighbours,
    QuerySet,
    bottom_hashes,
    hoeffding_half_width,
    recall_summary,
    sample_texts,
    text_hash,
)

K = 10


def _texts(count: int) -> list[str]:
    return [f"text number {i}" for i in range(count)]


def test_the_sample_is_the_same_however_the_corpus_is_cut():
    texts = _texts(5000) + ["text number 7"] * 3  # duplicates count once
    whole = bottom_hashes(texts, 64)
    for block in (1, 100, 1024, 6000):
        blocks = [texts[i : i + block] for i in range(0, len(texts), block)]
        assert sample_texts(blocks, 64) == (whole, len(texts))
    assert len(whole) == 64 and len({t for _, t in whole}) == 64
    assert whole == sorted(whole) and all(h == text_hash(t) for h, t in whole)
    assert text_hash("a") == text_hash("a") != text_hash("b") and 0 <= text_hash("a") < 2**63


def _brute_force(queries: np.ndarray, corpus: np.ndarray, excluded: np.ndarray) -> list[set[int]]:
    unit = corpus / np.linalg.norm(corpus, axis=1, keepdims=True)
    scores = queries.astype(np.float64) @ unit.T.astype(np.float64)
    scores[excluded] = -np.inf
    return [set(np.lexsort((np.arange(len(row)), -row))[:K].tolist()) for row in scores]


def _space(rng, rows: int) -> np.ndarray:
    return rng.standard_normal((rows, 24)).astype(np.float32)


@pytest.mark.parametrize("block", [7, 100, 1000])
def test_merged_blocks_find_each_querys_neighbours_in_the_whole_corpus(block):
    rng = np.random.default_rng(0)
    texts = _texts(1000)
    reference = _space(rng, 1000)
    actual = reference + 0.3 * _space(rng, 1000)  # a degraded encoder
    sample, _ = sample_texts([texts], 40)
    rows = [texts.index(t) for _, t in sample]
    queries = QuerySet.embed(sample, lambda _: {"ref": reference[rows], "act": actual[rows]})
    merged = BlockNeighbours.empty(queries)
    for start in range(0, len(texts), block):
        stop = start + block
        part = BlockNeighbours.of_block(
            queries, {"ref": reference[start:stop], "act": actual[start:stop]}, texts[start:stop]
        )
        merged.merge(BlockNeighbours.from_wire(part.to_wire()), start)  # through the wire, as Ray does
    excluded = np.zeros((len(rows), len(texts)), dtype=bool)
    excluded[np.arange(len(rows)), rows] = True  # a query is not its own neighbour
    expected = {
        key: _brute_force(queries.embeddings[key], space, excluded)
        for key, space in (("ref", reference), ("act", actual))
    }
    for key in ("ref", "act"):
        assert [set(r.tolist()) for r in merged.index[key]] == expected[key]
        assert np.all(np.diff(merged.similarity[key], axis=1) <= 0)
    truth = [len(r & a) / K for r, a in zip(expected["ref"], expected["act"], strict=True)]
    recall = merged.recall("act", "ref")
    assert recall.tolist() == truth and 0.2 < recall.mean() < 0.95  # the degradation is seen
    assert merged.recall("ref", "ref").tolist() == [1.0] * len(rows)


def test_copies_of_a_query_are_not_its_neighbours():
    texts = ["same"] * 3 + _texts(30)
    rng = np.random.default_rng(1)
    space = _space(rng, len(texts))
    space[:3] = space[0]
    sample = [(text_hash("same"), "same")]
    queries = QuerySet.embed(sample, lambda _: {"ref": space[:1]})
    found = BlockNeighbours.of_block(queries, {"ref": space}, texts)
    assert not set(found.index["ref"][0].tolist()) & {0, 1, 2}
    few = BlockNeighbours.of_block(queries, {"ref": space[:5]}, texts[:5])  # 2 candidates for k=10
    assert few.index["ref"][0].tolist()[2:] == [-1] * 8 and np.isinf(few.similarity["ref"][0, 2:]).all()


def test_the_interval_is_stated_and_shrinks_with_queries():
    assert recall_summary(np.array([])) == {}
    summary = recall_summary(np.array([1.0, 0.9, 0.8, 1.0]))
    assert summary["global_knn_recall10"] == pytest.approx(0.925)
    assert summary["global_knn_recall10_ci95"] == pytest.approx(1.96 * np.std([1, 0.9, 0.8, 1], ddof=1) / 2)
    assert hoeffding_half_width(512) == pytest.approx(0.0600, abs=1e-4)
    assert hoeffding_half_width(2048) < hoeffding_half_width(512)
