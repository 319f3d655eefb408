"""Split an op's work over the CPUs: numpy releases the GIL inside its loops, so threads that
each take a contiguous range of rows run in parallel. Every row is computed exactly as it would
be in one call (same loops, same reduction order), so results are bit-identical to serial.

Used where it pays on a 2-core machine: softmax and layer norm (row by row), stacked
matmuls (matrix by matrix) and slabs of row-wise ops (``slabs``, item by item). A chain of short
ufunc calls (gelu's blocks, adds) hands the GIL over too often, and OpenBLAS's spinning threads
compete for the cores, so those stay serial.

Work that is already shared out runs in *serial mode* (:func:`serial`): inside it, ops split
nothing further, so threads never wait on the pool they run in.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager

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


_local = threading.local()


@contextmanager
def serial() -> Iterator[None]:
    """Ops called inside run in the calling thread (its caller already shares the work out)."""
    before = getattr(_local, "serial", False)
    _local.serial = True
    try:
        yield
    finally:
        _local.serial = before


def in_serial() -> bool:
    return getattr(_local, "serial", False)


def splits(rows: int, elements: int) -> bool:
    """Would :func:`over_rows` share this op out (rather than run it in one call)?"""
    return min(WORKERS, rows) >= 2 and elements >= MIN_ELEMENTS and not in_serial()


def over_rows(work: Callable[[slice], object], rows: int, elements: int) -> None:
    """Call ``work(slice)`` on contiguous ranges covering ``range(rows)``, in parallel when the op
    is large enough; returns when every range is done (and re-raises the first failure)."""
    if not splits(rows, elements):
        work(slice(0, rows))
        return
    parts = min(WORKERS, rows)
    bounds = [rows * i // parts for i in range(parts + 1)]
    futures = [
        _executor().submit(work, slice(start, stop))
        for start, stop in zip(bounds[1:-1], bounds[2:], strict=True)
    ]
    work(slice(bounds[0], bounds[1]))  # the caller takes the first range itself
    for future in futures:
        future.result()


def over_items(work: Callable[[int], object], count: int) -> None:
    """Call ``work(i)`` for every ``i`` in ``range(count)``, in serial mode, on up to ``WORKERS``
    threads (the caller is one) that each take the next item when done: uneven items and a busy
    core balance out. Returns when every thread has stopped; re-raises the first failure (the
    other threads then take no new item)."""
    threads = min(WORKERS, count)
    if threads < 2 or in_serial():
        with serial():
            for i in range(count):
                work(i)
        return
    items = iter(range(count))
    lock = threading.Lock()
    failed = threading.Event()

    def drain() -> None:
        with serial():
            while not failed.is_set():
                with lock:
                    i = next(items, None)
                if i is None:
                    return
                try:
                    work(i)
                except BaseException:
                    failed.set()
                    raise

    futures = [_executor().submit(drain) for _ in range(threads - 1)]
    try:
        drain()
    finally:
        wait(futures)  # no thread may still write after we return, failed or not
    for future in futures:
        future.result()
