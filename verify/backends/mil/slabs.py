"""Slab execution: a run of row-wise ops, evaluated a few rows at a time.

Op by op, the attention of a 16-row × 256-token batch makes its 16×12×256×256 scores (50 MB) and
passes over them four times (scale, mask, softmax, the product with the values), each pass
streaming from memory. A *slab* is a run of consecutive steps that each compute output row ``i``
(axis 0) from input row ``i`` alone. The executor runs the whole run on a slice of rows at a
time, so one slice's intermediates stay in cache, and shares the slices over the CPUs; on the
encoder one slab runs all six layers.

A step joins a slab as one of three kinds:

* :data:`ROWS`: an op whose rule in ``ops.ROW_WISE`` holds (elementwise, softmax, linear, ...);
* :data:`SHAPES`: ``shape``, and arithmetic on shapes (``ops.SHAPE_ARITHMETIC``). Inside a slab
  ``shape`` reports the whole batch's rows, so every slice computes the whole run's values;
* :data:`CHECKED`: ``reshape`` and ``tile``, row-wise when their run-time shape keeps the rows
  (``ops.SLICED``); when it does not, the slab runs op by op instead.

An input of one row (broadcast over the batch, as position embeddings are) goes whole to every
slice, and so does what is computed from such inputs alone.

Each op still runs its own function on its slice, and a row-wise op never lets one row change
another, so the results are the same bits as op by op (tested on the real encoder). One caveat:
``linear`` on a slice is a GEMM with fewer rows, and a BLAS could round by row count; OpenBLAS
does not (the test above passes with it), but a different BLAS might move a last bit.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from verify.backends.mil import ops, parallel

#: Input elements per slice: one slice of the attention above is one row (3 MB of scores); a
#: 64-row × 28-token batch goes about 12 rows a slice. Measured on that attention: 1.6-2.1x faster
#: than op by op at 16×256, 1.3-1.6x at 64×28.
SLICE_ELEMENTS = 1 << 17
#: A lone row-wise op gains nothing from slicing (the large ones already share their rows out).
MIN_STEPS = 2
#: Rows a slice holds at least: numpy sends a product of one row to BLAS's gemv, which sums in
#: another order than a GEMM's row, so a slice of one row could round a linear differently.
MIN_ROWS = 2

#: Step kinds (see the module docstring).
ROWS, SHAPES, CHECKED = "rows", "shapes", "checked"


@dataclass(frozen=True)
class Slab:
    start: int  # first step
    stop: int  # one past the last step
    inputs: tuple[str, ...]  # read from outside the slab
    outputs: tuple[str, ...]  # made inside, read after it or returned
    kinds: tuple[str, ...]  # each step's kind
    reads: tuple[tuple[str, ...], ...]  # each step's input variables
    writes: tuple[tuple[str, ...], ...]  # each step's output variables


#: ``evaluate(step, env, rows, total)`` runs one step on a slice: ``rows`` is the slice's row count
#: when the step's outputs are sliced (None when they are the whole batch's), ``total`` the
#: batch's row count when the step reads a sliced input (None when it does not).
Evaluate = Callable[[int, dict[str, Any], "int | None", "int | None"], None]


def plan(
    reads: Sequence[Sequence[str]],
    writes: Sequence[Sequence[str]],
    kinds: Sequence[str | None],
    keep: Collection[str],
) -> dict[int, Slab]:
    """The maximal runs of consecutive steps that may join a slab (``kinds[i]`` not None), with at
    least :data:`MIN_STEPS` that compute rows, by first step. ``reads`` / ``writes``: each step's
    input and output variables; ``keep``: program outputs."""
    slabs: dict[int, Slab] = {}
    start, count = 0, len(kinds)
    while start < count:
        if kinds[start] is None:
            start += 1
            continue
        stop = start
        while stop < count and kinds[stop] is not None:
            stop += 1
        if sum(kinds[step] != SHAPES for step in range(start, stop)) >= MIN_STEPS:
            steps = range(start, stop)
            made = {var for step in steps for var in writes[step]}
            read = (var for step in steps for var in reads[step])
            inputs = dict.fromkeys(var for var in read if var not in made)
            later = {var for step in range(stop, count) for var in reads[step]} | set(keep)
            outputs = tuple(var for step in steps for var in writes[step] if var in later)
            slabs[start] = Slab(
                start,
                stop,
                tuple(inputs),
                outputs,
                tuple(kinds[step] or "" for step in steps),
                tuple(tuple(reads[step]) for step in steps),
                tuple(tuple(writes[step]) for step in steps),
            )
        start = stop
    return slabs


def _rows_of(value: Any) -> int | None:
    return value.shape[0] if isinstance(value, np.ndarray) and value.ndim >= 2 else None


def run(slab: Slab, env: dict[str, Any], evaluate: Evaluate) -> bool:
    """Evaluate the slab's steps slice by slice and put its outputs in ``env``.

    Returns False, with ``env`` untouched, when slicing does not apply: inputs of different row
    counts (other than one row), one slice would hold them all, a reshape or tile that does not
    keep the rows. The caller then runs the steps op by op.
    """
    values = [env[name] for name in slab.inputs]
    counts = {rows for rows in map(_rows_of, values) if rows is not None}
    total = max(counts, default=0)
    if total < 2 or counts - {1, total}:
        return False
    sliced = {name for name, value in zip(slab.inputs, values, strict=True) if _rows_of(value) == total}
    calls: list[tuple[bool, bool]] = []  # per step: (outputs sliced, reads a sliced input)
    for kind, reads, writes in zip(slab.kinds, slab.reads, slab.writes, strict=True):
        reads_sliced = any(var in sliced for var in reads)
        if kind == CHECKED and not reads_sliced:
            return False  # its rows come from the whole batch
        out_sliced = reads_sliced and kind != SHAPES
        if out_sliced:
            sliced.update(writes)
        calls.append((out_sliced, reads_sliced))
    largest = max(value.size for name, value in zip(slab.inputs, values, strict=True) if name in sliced)
    step = max(1, SLICE_ELEMENTS // max(largest // total, 1))  # rows a slice
    parts = -(-total // step)
    if parts < 2 or total < 2 * MIN_ROWS:
        return False
    parts = min(total // MIN_ROWS, -(-parts // parallel.WORKERS) * parallel.WORKERS)  # even work per CPU
    bounds = [total * i // parts for i in range(parts + 1)]
    results: list[dict[str, Any]] = [{} for _ in range(parts)]

    def work(k: int) -> None:
        first, stop = bounds[k], bounds[k + 1]
        local = {
            name: value[first:stop] if name in sliced else value
            for name, value in zip(slab.inputs, values, strict=True)
        }
        for offset, (out_sliced, reads_sliced) in enumerate(calls):
            rows = stop - first if out_sliced else None
            evaluate(slab.start + offset, local, rows, total if reads_sliced else None)
        results[k] = {name: local[name] for name in slab.outputs}

    try:
        with ops.one_blas_thread():  # one GEMM per thread: the slices are the parallelism
            parallel.over_items(work, parts)
    except ops.NotRowWise:
        return False
    for name in slab.outputs:
        env[name] = np.concatenate([r[name] for r in results]) if name in sliced else results[0][name]
    return True
