"""Bounds per Core ML compute unit setting, for the runtime on a device.

The GPU and the Neural Engine compute fp16 with other accumulation, fusions and transcendental
functions than the MIL executor's emulation (fp16 storage, fp32 arithmetic). Until the macOS job
has measured them, each unit's bounds are derived from the emulation's measured error with a
stated margin, and say so (``measured_on_device=False``).
"""

from __future__ import annotations

import math
from dataclasses import replace

from contracts.schema import Bound, DeviceBounds, OutputTolerance

#: Metrics where larger is better and 1 is perfect, and those in dB; every other metric is an error.
UNIT_IDEAL = frozenset({"min_cosine", "mean_cosine", "top10_overlap"})
DECIBELS = frozenset({"snr_db", "psnr_db"})

#: Error margin per compute unit setting, over the emulation's measured error: the CPU runs fp16
#: programs close to the emulation; the GPU accumulates in other orders; the Neural Engine also
#: accumulates in reduced precision (ALL may place any op on it).
MARGINS = {"CPU_ONLY": 2.0, "CPU_AND_GPU": 4.0, "CPU_AND_NE": 8.0, "ALL": 8.0}


def widened(bound: Bound, factor: float) -> Bound:
    """``bound`` with its measured error multiplied by ``factor``, never tighter than before."""
    if bound.measured is None:
        return bound
    if bound.metric in DECIBELS:
        limit = min(bound.limit, bound.measured - 20 * math.log10(factor))
    elif bound.metric in UNIT_IDEAL:
        limit = min(bound.limit, 1 - (1 - bound.measured) * factor)
    else:
        limit = max(bound.limit, bound.measured * factor)
    return replace(bound, limit=float(f"{limit:.6g}"))


def derived_device_bounds(tolerances: tuple[OutputTolerance, ...]) -> tuple[DeviceBounds, ...]:
    """One entry per compute unit setting, from the emulation's measured values, not yet measured
    on a device."""
    return tuple(
        DeviceBounds(
            units,
            tuple(OutputTolerance(t.output, tuple(widened(b, factor) for b in t.bounds)) for t in tolerances),
            measured_on_device=False,
            basis=f"MIL executor emulation's measured error x{factor:g}; not measured on device",
        )
        for units, factor in MARGINS.items()
    )
