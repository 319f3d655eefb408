"""Error statistics between an artifact's outputs and the goldens, and tolerance bounds.

Each metric has a direction: ``<=`` for errors (max_abs) and ``>=`` for agreement
(min_cosine). The measured value is also the tightest bound that would have passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from contracts import Bound


def _abs_error(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    return np.abs(actual.astype(np.float64) - expected.astype(np.float64))


def _cosines(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(e, axis=1)
    return np.sum(a * e, axis=1) / np.maximum(norms, 1e-30)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


def _top_k_overlap(actual: np.ndarray, expected: np.ndarray, k: int = 10) -> float:
    top_a = np.argsort(-actual, axis=1)[:, :k]
    top_e = np.argsort(-expected, axis=1)[:, :k]
    return float(np.mean([len(set(a) & set(e)) / k for a, e in zip(top_a, top_e, strict=True)]))


#: Noise energy floor of SNR and PSNR: identical outputs read about 300 dB, not infinity.
_NOISE_FLOOR = 1e-30


def _noise_energy(actual: np.ndarray, expected: np.ndarray) -> float:
    return max(
        float(np.mean(np.square(actual.astype(np.float64) - expected.astype(np.float64)))), _NOISE_FLOOR
    )


def _snr_db(actual: np.ndarray, expected: np.ndarray) -> float:
    """10 log10(mean signal² / mean noise²) over all values, as coremltools' ``compute_snr_and_psnr``."""
    signal = float(np.mean(np.square(expected.astype(np.float64))))
    return float(10 * np.log10(signal / _noise_energy(actual, expected)))


def _psnr_db(actual: np.ndarray, expected: np.ndarray) -> float:
    """10 log10(max signal² / mean noise²) over all values, as coremltools' ``compute_snr_and_psnr``."""
    peak = float(np.max(np.square(expected.astype(np.float64))))
    return float(10 * np.log10(peak / _noise_energy(actual, expected)))


#: PSNR gates peers state (label, dB): where each artifact stands against them is reported.
PSNR_PEER_GATES: tuple[tuple[str, float], ...] = (
    ("coremltools bisect_model warns below", 35.0),
    ("ml-stable-diffusion refuses below", 35.0),
    ("ml-ane-transformers asserts above", 60.0),
)


def peer_gates(psnr_db: float) -> dict[str, bool]:
    """Whether ``psnr_db`` clears each peer's PSNR gate."""
    return {f"{label} {limit:g} dB": psnr_db >= limit for label, limit in PSNR_PEER_GATES}


@dataclass(frozen=True)
class Metric:
    direction: str  # "<=" or ">="
    compute: Callable[[np.ndarray, np.ndarray], float]
    description: str


METRICS: dict[str, Metric] = {
    "max_abs": Metric("<=", lambda a, e: float(_abs_error(a, e).max()), "largest absolute error"),
    "p99_abs": Metric(
        "<=", lambda a, e: float(np.percentile(_abs_error(a, e), 99)), "99th percentile abs error"
    ),
    "max_rel": Metric(
        "<=",
        lambda a, e: float((_abs_error(a, e) / (np.abs(e.astype(np.float64)) + 1e-6)).max()),
        "largest error relative to |golden| + 1e-6",
    ),
    "min_cosine": Metric(
        ">=", lambda a, e: float(_cosines(a, e).min()), "smallest per-row cosine similarity"
    ),
    "mean_cosine": Metric(">=", lambda a, e: float(_cosines(a, e).mean()), "mean per-row cosine similarity"),
    "sigmoid_max_abs": Metric(
        "<=", lambda a, e: float(np.abs(_sigmoid(a) - _sigmoid(e)).max()), "largest probability error"
    ),
    "flip_rate": Metric(
        "<=", lambda a, e: float(np.mean((a > 0) != (e > 0))), "share of sigmoid decisions at 0.5 flipped"
    ),
    "top10_overlap": Metric(">=", _top_k_overlap, "mean overlap of the 10 highest logits"),
    "snr_db": Metric(">=", _snr_db, "signal-to-noise ratio over all values, dB"),
    "psnr_db": Metric(">=", _psnr_db, "peak signal-to-noise ratio over all values, dB"),
    "max_norm_error": Metric(
        "<=",
        lambda a, e: float(np.abs(np.linalg.norm(a.astype(np.float64), axis=1) - 1.0).max()),
        "largest deviation of a row's L2 norm from 1 (unit_norm outputs)",
    ),
}

#: Statistics shown for every output whatever its bounds.
REPORTED = ("max_abs", "p99_abs", "max_rel", "min_cosine", "mean_cosine", "snr_db", "psnr_db")


def statistics(actual: np.ndarray, expected: np.ndarray, extra: tuple[str, ...] = ()) -> dict[str, float]:
    names = dict.fromkeys((*REPORTED, *extra))
    return {name: METRICS[name].compute(actual, expected) for name in names}


#: log10 |error| bin edges of the error histograms in reports: 1e-10 … 10, four bins a decade.
HISTOGRAM_EDGES = tuple(round(-10 + 0.25 * i, 2) for i in range(45))


def error_histogram(errors: list[np.ndarray]) -> dict[str, list]:
    """Counts of |actual - golden| per log10 bin; exact zeros and values beyond the edges apart."""
    values = np.concatenate([e.ravel() for e in errors]) if errors else np.zeros(0)
    nonzero = values[values > 0]
    logs = np.log10(nonzero)
    counts, _ = np.histogram(np.clip(logs, HISTOGRAM_EDGES[0], HISTOGRAM_EDGES[-1]), bins=HISTOGRAM_EDGES)
    return {
        "log10_edges": list(HISTOGRAM_EDGES),
        "counts": counts.tolist(),
        "zeros": int(values.size - nonzero.size),
        "total": int(values.size),
    }


def within(bound: Bound, value: float) -> bool:
    metric = METRICS[bound.metric]
    if not np.isfinite(value):
        return False
    return value <= bound.limit if metric.direction == "<=" else value >= bound.limit


def budget_used(bound: Bound, value: float) -> float:
    """Share of the tolerance budget used: 1.0 means exactly at the limit."""
    if METRICS[bound.metric].direction == "<=":
        return value / bound.limit if bound.limit else float("inf")
    # agreement metrics: distance from perfect (1.0) against the allowed distance
    allowed = 1.0 - bound.limit
    return (1.0 - value) / allowed if allowed > 0 else float("inf")
