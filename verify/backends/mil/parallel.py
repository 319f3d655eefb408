"""Split an op's work over the CPUs: numpy releases the GIL inside its loops, so threads that
each take a contiguous range of rows run in parallel. Every row is computed exactly as it would
be in one call (same loops, same reduction order), so results are bit-identical to serial.

Used where it pays on a 2-core machine: softmax and layer norm (row by row) and stacked
matmuls (matrix by matrix). A chain of short ufunc calls (gelu's blocks, adds) hands the GIL
over too often, and OpenBLAS's spinning threads compete for the cores, so those stay serial.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

#: Below this many elements an op runs in the calling thread: a hand-off costs ~20 µs.
MIN_ELEMENTS = 1 << 16


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


WORKERS = max(1, min(_cpus(), 8))
_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="mil-op")
    return _pool


def over_rows(work: Callable[[slice], object], rows: int, elements: int) -> None:
    """Call ``work(slice)`` on contiguous ranges covering ``range(rows)``, in parallel when the op
    is large enough; returns when every range is done (and re-raises the first failure)."""
    parts = min(WORKERS, rows)
    if parts < 2 or elements < MIN_ELEMENTS:
        work(slice(0, rows))
        return
    bounds = [rows * i // parts for i in range(parts + 1)]
    futures = [
        _executor().submit(work, slice(start, stop))
        for start, stop in zip(bounds[1:-1], bounds[2:], strict=True)
    ]
    work(slice(bounds[0], bounds[1]))  # the caller takes the first range itself
    for future in futures:
        future.result()
