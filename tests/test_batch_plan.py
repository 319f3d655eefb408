"""The padding-aware batch planner that ``inference.encode`` and the corpus audit run on."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from verify.tokenization import plan_batches


def padded_cost(lengths: np.ndarray, batches: list[np.ndarray], overhead: int) -> int:
    return sum(len(rows) * int(lengths[rows].max()) + overhead for rows in batches)


def brute_force_cost(lengths: np.ndarray, batch_size: int, overhead: int) -> int:
    """Every way of cutting the sorted lengths into runs of at most ``batch_size``."""
    ordered = np.sort(lengths)
    best = None
    for cuts in itertools.product((False, True), repeat=len(ordered) - 1):
        bounds = [0, *(i + 1 for i, cut in enumerate(cuts) if cut), len(ordered)]
        runs = [ordered[a:b] for a, b in itertools.pairwise(bounds)]
        if all(len(run) <= batch_size for run in runs):
            cost = sum(len(run) * int(run.max()) + overhead for run in runs)
            best = cost if best is None else min(best, cost)
    assert best is not None
    return best


@settings(max_examples=150, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 256), min_size=1, max_size=9),
    batch_size=st.integers(1, 5),
    overhead=st.sampled_from([0, 7, 128, 10_000]),
)
def test_plan_is_a_partition_with_the_least_padded_cost(lengths, batch_size, overhead):
    values = np.array(lengths, dtype=np.int64)
    batches = plan_batches(values, batch_size, overhead)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(len(values)))
    assert all(1 <= len(b) <= batch_size for b in batches)
    widths = [int(values[b].max()) for b in batches]
    assert widths == sorted(widths)
    assert padded_cost(values, batches, overhead) == brute_force_cost(values, batch_size, overhead)


def test_plan_never_pads_more_than_fixed_chunks_of_the_sorted_rows():
    rng = np.random.default_rng(0)
    lengths = np.minimum(256, rng.lognormal(3.3, 0.8, 1_024).astype(np.int64) + 3)
    ordered = np.sort(lengths)
    chunks = [np.arange(s, min(s + 64, len(ordered))) for s in range(0, len(ordered), 64)]
    fixed = padded_cost(ordered, chunks, 128)
    planned = padded_cost(lengths, plan_batches(lengths, 64), 128)
    assert planned < 0.9 * fixed  # a long tail: the last fixed chunk pads most rows to 256


def test_plan_of_no_rows_is_empty():
    assert plan_batches(np.zeros(0, dtype=np.int64), 64) == []
