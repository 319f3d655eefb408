"""Slab execution: a run of row-wise ops, evaluated a few rows at a time.

Op by op, the attention of a 16-row × 256-token batch makes its 16×12×256×256 scores (50 MB) and
passes over them four times (scale, mask, softmax, the product with the values), each pass
streaming from memory. A *slab* is a run of consecutive steps that each compute output row ``i``
(axis 0) from input row ``i`` alone (``ops.ROW_WISE``). The executor runs the whole run on a
slice of rows at a time, so one slice's intermediates stay in cache, and shares the slices over
the CPUs.

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
#: 64-row × 28-token batch goes 12 rows a slice. Measured on that attention: 1.6-2.1x faster
#: than op by op at 16×256, 1.3-1.6x at 64×28.
SLICE_ELEMENTS = 1 << 17
#: A lone row-wise op gains nothing from slicing (the large ones already share their rows out).
MIN_STEPS = 2


@dataclass(frozen=True)
class Slab:
    start: int  # first step
    stop: int  # one past the last step
    inputs: tuple[str, ...]  # read from outside the slab
    outputs: tuple[str, ...]  # made inside, read after it or returned


def plan(
    reads: Sequence[Sequence[str]],
    writes: Sequence[Sequence[str]],
    row_wise: Sequence[bool],
    keep: Collection[str],
) -> dict[int, Slab]:
    """The maximal runs of at least :data:`MIN_STEPS` consecutive row-wise steps, by first step.
    ``reads`` / ``writes``: each step's input and output variables; ``keep``: program outputs."""
    slabs: dict[int, Slab] = {}
    start, count = 0, len(row_wise)
    while start < count:
        if not row_wise[start]:
            start += 1
            continue
        stop = start
        while stop < count and row_wise[stop]:
            stop += 1
        if stop - start >= MIN_STEPS:
            made = {var for step in range(start, stop) for var in writes[step]}
            read = (var for step in range(start, stop) for var in reads[step])
            inputs = dict.fromkeys(var for var in read if var not in made)
            later = {var for step in range(stop, count) for var in reads[step]} | set(keep)
            outputs = tuple(var for step in range(start, stop) for var in writes[step] if var in later)
            slabs[start] = Slab(start, stop, tuple(inputs), outputs)
        start = stop
    return slabs


def run(slab: Slab, env: dict[str, Any], evaluate: Callable[[int, dict[str, Any], int], None]) -> bool:
    """Evaluate the slab's steps slice by slice and put its outputs in ``env``.

    ``evaluate(step, local_env, rows)`` runs one step on a slice of ``rows`` rows. Returns False,
    with ``env`` untouched, when slicing does not apply (the inputs do not share one row count,
    or one slice would hold them all): the caller then runs the steps op by op.
    """
    values = [env[name] for name in slab.inputs]
    if not values or any(not isinstance(v, np.ndarray) or v.ndim < 2 for v in values):
        return False
    row_counts = {v.shape[0] for v in values}
    if len(row_counts) != 1:  # a broadcast input (one row): its row would not be the slice's
        return False
    (rows,) = row_counts
    per_row = max(v.size for v in values) // max(rows, 1)
    step = max(1, SLICE_ELEMENTS // max(per_row, 1))
    slices = [slice(first, min(first + step, rows)) for first in range(0, rows, step)]
    if len(slices) < 2:
        return False
    results: list[dict[str, np.ndarray]] = [{} for _ in slices]

    def work(k: int) -> None:
        part = slices[k]
        local = {name: value[part] for name, value in zip(slab.inputs, values, strict=True)}
        for index in range(slab.start, slab.stop):
            evaluate(index, local, part.stop - part.start)
        results[k] = {name: local[name] for name in slab.outputs}

    with ops.one_blas_thread():  # one GEMM per thread: the slices are the parallelism
        parallel.over_items(work, len(slices))
    for name in slab.outputs:
        env[name] = np.concatenate([result[name] for result in results])
    return True
