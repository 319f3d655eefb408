"""kNN recall against the whole corpus, for a uniform sample of query texts.

The audit's ``knn_recall10`` is exact within blocks of consecutive texts: neighbours are sought
among 1,023 candidates, not the corpus. This module measures recall@10 against *every* text of
the corpus, for a sample of queries:

1. **Queries.** A pre-pass over the texts (no model) keeps the ``count`` texts with the smallest
   64-bit BLAKE2b hashes: a uniform sample of the corpus's distinct texts, mergeable across blocks
   and engines (:func:`bottom_hashes`, :func:`merge_bottom`).
2. **Embeddings.** Every audited encoder (the reference included) embeds the queries once
   (:class:`QuerySet`).
3. **Neighbours.** Each block finds, for every query and every encoder, its 10 most similar
   texts in the block, in that encoder's space; texts equal to the query are not candidates.
   Blocks merge into each query's 10 nearest texts of the whole corpus
   (:class:`BlockNeighbours`), exactly: ties go to the earlier text.
4. **Recall.** Per query and encoder, the share of its 10 reference neighbours that the encoder
   also ranks among its 10; the mean over queries estimates the corpus's mean recall@10.

Error: the estimate's only error is sampling. Per-query recalls lie in [0, 1], so the mean of
``count`` of them is within ``sqrt(ln(2/δ) / 2·count)`` of the corpus mean with probability 1 − δ
(Hoeffding; 0.060 for 512 queries at δ = 0.05, whatever the corpus), and in practice within the
normal interval ±1.96·s/√count that the audit reports (``global_knn_recall10_ci95``).
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

NEIGHBOURS = 10
#: Query texts sampled for the global recall by default.
QUERIES = 512


def text_hash(text: str) -> int:
    """A 63-bit hash of ``text``, the same in every process (unlike ``hash``)."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def bottom_hashes(texts: Iterable[str], count: int) -> list[tuple[int, str]]:
    """The ``count`` distinct texts with the smallest hashes, as (hash, text), smallest first."""
    return merge_bottom([], [(text_hash(t), t) for t in texts], count)


def merge_bottom(a: list[tuple[int, str]], b: list[tuple[int, str]], count: int) -> list[tuple[int, str]]:
    """The ``count`` smallest distinct (hash, text) pairs of two samples."""
    return heapq.nsmallest(count, set(a) | set(b))


def sample_texts(blocks: Iterable[list[str]], count: int) -> tuple[list[tuple[int, str]], int]:
    """:func:`bottom_hashes` over a stream of blocks, in memory for ``count`` texts; and the
    number of texts seen."""
    sample: list[tuple[int, str]] = []
    seen = 0
    for texts in blocks:
        sample = merge_bottom(sample, bottom_hashes(texts, count), count)
        seen += len(texts)
    return sample, seen


def hoeffding_half_width(count: int, delta: float = 0.05) -> float:
    """Half-width of the interval that holds the mean of ``count`` values in [0, 1] with
    probability 1 − ``delta``, whatever their distribution."""
    return math.sqrt(math.log(2 / delta) / (2 * count)) if count else math.inf


@dataclass
class QuerySet:
    """The sampled queries: their hashes (to skip them as candidates) and, per encoder key, their
    embeddings in that encoder's space, unit length."""

    hashes: np.ndarray  # (Q,) int64
    embeddings: dict[str, np.ndarray]  # key -> (Q, d) float32, rows of unit length

    @classmethod
    def embed(
        cls, sample: list[tuple[int, str]], embed: Callable[[list[str]], dict[str, np.ndarray]]
    ) -> QuerySet:
        """``embed(texts)`` returns each encoder's embeddings of ``texts``."""
        texts = [text for _, text in sample]
        return cls(
            np.array([h for h, _ in sample], dtype=np.int64),
            {key: _unit(values) for key, values in embed(texts).items()},
        )


def _unit(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)


@dataclass
class BlockNeighbours:
    """Per encoder key, each query's nearest texts so far: similarities (Q, k), descending, and
    corpus indices (Q, k); -inf and -1 where fewer than k candidates were seen."""

    similarity: dict[str, np.ndarray]
    index: dict[str, np.ndarray]

    @classmethod
    def of_block(
        cls, queries: QuerySet, embeddings: dict[str, np.ndarray], texts: list[str], k: int = NEIGHBOURS
    ) -> BlockNeighbours:
        """The block's own k nearest texts per query, indices counted from the block's first text."""
        same = np.array([text_hash(t) for t in texts], dtype=np.int64)[:, None] == queries.hashes[None, :]
        similarity, index = {}, {}
        for key, query in queries.embeddings.items():
            scores = (_unit(embeddings[key]).astype(np.float64) @ query.T.astype(np.float64)).T  # (Q, n)
            scores[same.T] = -np.inf
            positions = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
            similarity[key], index[key] = _best(scores, positions, k)
        return cls(similarity, index)

    @classmethod
    def empty(cls, queries: QuerySet, k: int = NEIGHBOURS) -> BlockNeighbours:
        rows = len(queries.hashes)
        return cls(
            {key: np.full((rows, k), -np.inf) for key in queries.embeddings},
            {key: np.full((rows, k), -1, dtype=np.int64) for key in queries.embeddings},
        )

    def merge(self, other: BlockNeighbours, offset: int) -> None:
        """Fold in a later block whose first text is text ``offset`` of the corpus."""
        for key in self.similarity:
            shifted = np.where(other.index[key] >= 0, other.index[key] + offset, -1)
            self.similarity[key], self.index[key] = _best(
                np.concatenate([self.similarity[key], other.similarity[key]], axis=1),
                np.concatenate([self.index[key], shifted], axis=1),
                self.similarity[key].shape[1],
            )

    def recall(self, key: str, reference: str) -> np.ndarray:
        """Per query: the share of its reference neighbours that ``key`` also ranks among its own."""
        ref, act = self.index[reference], self.index[key]
        out = np.ones(len(ref))
        for row, (r, a) in enumerate(zip(ref, act, strict=True)):
            wanted = set(r[r >= 0].tolist())
            if wanted:
                out[row] = len(wanted & set(a[a >= 0].tolist())) / len(wanted)
        return out

    def to_wire(self) -> dict:
        return {
            key: {"similarity": self.similarity[key].tolist(), "index": self.index[key].tolist()}
            for key in self.similarity
        }

    @classmethod
    def from_wire(cls, wire: dict) -> BlockNeighbours:
        return cls(
            {
                key: np.array(v["similarity"], dtype=np.float64).reshape(len(v["index"]), -1)
                for key, v in wire.items()
            },
            {
                key: np.array(v["index"], dtype=np.int64).reshape(len(v["index"]), -1)
                for key, v in wire.items()
            },
        )


def _best(scores: np.ndarray, positions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k highest scores (ties: the lower position first), padded with -inf / -1."""
    rows = scores.shape[0]
    similarity = np.full((rows, k), -np.inf)
    index = np.full((rows, k), -1, dtype=np.int64)
    for row in range(rows):
        valid = np.isfinite(scores[row]) & (positions[row] >= 0)
        values, where = scores[row][valid], positions[row][valid]
        order = np.lexsort((where, -values))[:k]
        similarity[row, : len(order)] = values[order]
        index[row, : len(order)] = where[order]
    return similarity, index


def recall_summary(recalls: np.ndarray) -> dict[str, float]:
    """Mean recall over the queries and the half-width of its normal 95 % interval."""
    if not len(recalls):
        return {}
    spread = float(np.std(recalls, ddof=1)) if len(recalls) > 1 else 0.0
    return {
        "global_knn_recall10": float(np.mean(recalls)),
        "global_knn_recall10_ci95": 1.96 * spread / math.sqrt(len(recalls)),
    }
