"""The timing protocol shared by the benchmarks: backends interleaved, medians, per-round ratios."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

#: Idle seconds before each timed run (see time_interleaved).
PAUSE = 0.2


def time_interleaved(
    runs: dict[str, Callable[[], object]], rounds: int, warmup: int = 2, clock=time.perf_counter, pause=PAUSE
) -> dict[str, list[float]]:
    """Each round runs every model once; ``pause`` seconds idle before each run, so that the
    spin-waiting threads of the session run just before have gone to sleep (without it, every
    model competes with its predecessor's spinning pool, and the shorter runs suffer most)."""
    for run in runs.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            time.sleep(pause)
            start = clock()
            run()
            times[name].append(clock() - start)
    return times


def ratio(times: dict[str, list[float]], base: str, name: str) -> float:
    """How many times faster ``name`` is than ``base``: the median of the per-round ratios."""
    return statistics.median(b / x for b, x in zip(times[base], times[name], strict=True))


def summarize(times: dict[str, list[float]], base: str, items: int) -> dict[str, dict[str, object]]:
    """rate (items/s) from the median time; ratio = median over rounds of (base time / this time),
    with the lowest and highest per-round ratio (how much the machine's load moved it)."""
    summary: dict[str, dict[str, object]] = {}
    for name, t in times.items():
        per_round = [b / x for b, x in zip(times[base], t, strict=True)]
        summary[name] = {
            "rate": items / statistics.median(t),
            "median_s": statistics.median(t),
            "ratio": statistics.median(per_round),
            "ratio_range": (min(per_round), max(per_round)),
        }
    return summary
