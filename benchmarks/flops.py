"""Matmul FLOPs of encoder_v1 and the machine's float32 GEMM rate (numpy sgemm).

Only the matrix products count (2 FLOPs per multiply-add): per layer and token the Q, K, V and
attention-output projections (4·d²) and the FFN (2·d·f), per layer and row the attention
products Q·Kᵀ and softmax·V (2·L²·d each, over all heads); the 384→1536 head once per row.
Embedding lookup, LayerNorm, softmax, GELU, pooling and normalisation are elementwise and left
out, so the FLOP rate derived from them is a slight underestimate of the work done.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

#: all-MiniLM-L6-v2 and the encoder_v1 head.
LAYERS, HIDDEN, FFN, EMBEDDING = 6, 384, 1536, 1536
#: Side of the square float32 matrices timed for the machine's GEMM rate.
GEMM_SIZE = 2048


def encoder_flops(batch_shapes: Iterable[tuple[int, int]]) -> int:
    """Matmul FLOPs of encoder_v1 over batches of (rows, padded length)."""
    total = 0
    for rows, length in batch_shapes:
        per_token = 2 * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN)
        attention = 2 * 2 * length * length * HIDDEN  # Q·Kᵀ and softmax·V, all heads
        total += LAYERS * rows * (length * per_token + attention)
        total += rows * 2 * HIDDEN * EMBEDDING
    return total


def length_sorted_shapes(token_counts: Sequence[int], batch_size: int) -> list[tuple[int, int]]:
    """(rows, padded length) of each batch when rows are sorted by token count and each batch is
    padded to its own longest row (what inference.encode and the verifier do)."""
    counts = sorted(int(c) for c in token_counts)
    return [
        (len(counts[start : start + batch_size]), counts[min(start + batch_size, len(counts)) - 1])
        for start in range(0, len(counts), batch_size)
    ]


def gemm_flops(size: int = GEMM_SIZE) -> int:
    return 2 * size**3


def gemm_operands(size: int = GEMM_SIZE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((size, size), dtype=np.float32),
        rng.standard_normal((size, size), dtype=np.float32),
    )
