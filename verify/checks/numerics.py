"""Numerics: run an artifact on the goldens at each batch size and hold each output to its bounds."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from contracts import ArtifactSpec, Bound, Contract
from golden.store import Golden
from verify.backends.runners import Runner
from verify.compare import METRICS, budget_used, error_histogram, peer_gates, statistics, within
from verify.result import CheckResult, failed, verdict


def length_order(golden: Golden) -> np.ndarray:
    """Rows sorted by token count, so each batch pads only to its own longest row."""
    mask = golden.tensors.get("attention_mask")
    if mask is None:
        return np.arange(golden.rows)
    return np.argsort(mask.sum(axis=1), kind="stable")


def run_goldens(runner: Runner, contract: Contract, golden: Golden, batch: int) -> dict[str, np.ndarray]:
    """All golden rows through ``runner`` in length-sorted batches of ``batch``, in golden order."""
    names = [spec.name for spec in contract.inputs]
    order = length_order(golden)
    results: dict[str, list[Any]] = {spec.name: [None] * golden.rows for spec in contract.outputs}
    batches = [order[start : start + batch] for start in range(0, golden.rows, batch)]
    for rows, outputs in zip(
        batches, runner.run_all([golden.batch(names, rows) for rows in batches]), strict=True
    ):
        for name, rows_out in results.items():
            for row, value in zip(rows, outputs[name], strict=True):
                rows_out[row] = value
    return {name: np.stack(rows_out) for name, rows_out in results.items()}


#: Outputs of one artifact on the goldens, per batch size: {batch: {output: array}}.
RunsByBatch = dict[int, dict[str, np.ndarray]]


def judge(
    name: str,
    actual_by_batch: dict[int, np.ndarray],
    expected: np.ndarray,
    bounds: tuple[Bound, ...],
    unit_norm: bool = False,
    **details: object,
) -> CheckResult:
    """Hold one output, run at several batch sizes, to ``bounds`` against ``expected``: each
    bound is judged on its worst batch size; statistics per batch size go to the details."""
    extra = tuple(b.metric for b in bounds)
    problems, stats, worst, errors, nonfinite = [], {}, {}, [], []
    for batch, actual in actual_by_batch.items():
        if actual.shape != expected.shape:
            problems.append(f"batch {batch}: shape {actual.shape} != golden {expected.shape}")
            continue
        if not np.isfinite(actual).all():
            problems.append(f"batch {batch}: NaN or Inf in output")
            nonfinite.append(batch)
            continue
        stats[batch] = statistics(actual, expected, extra)
        errors.append(np.abs(actual.astype(np.float64) - expected.astype(np.float64)))
        if unit_norm:
            stats[batch]["max_norm_error"] = float(np.abs(np.linalg.norm(actual, axis=1) - 1.0).max())
    for bound in bounds:
        values = [s[bound.metric] for s in stats.values()]
        if not values:
            continue
        value = max(values) if METRICS[bound.metric].direction == "<=" else min(values)
        worst[bound.metric] = {
            "value": value,
            "limit": bound.limit,
            "budget_used": budget_used(bound, value),
            "measured_when_set": bound.measured,
        }
        if not within(bound, value):
            problems.append(
                f"{bound.metric} {value:.3g} beyond {METRICS[bound.metric].direction} {bound.limit:g}"
            )
    if not bounds:
        problems.append("the contract sets no tolerance for this output")
    summary = ", ".join(
        f"{m} {w['value']:.3g} ({METRICS[m].direction} {w['limit']:g})" for m, w in worst.items()
    )
    psnr = min((s["psnr_db"] for s in stats.values()), default=None)
    if psnr is not None:
        summary += f"; PSNR {psnr:.1f} dB"
    return verdict(
        name,
        problems,
        summary,
        bounds=worst,
        psnr_db=psnr,
        nonfinite_batches=nonfinite,
        peer_gates=peer_gates(psnr) if psnr is not None else {},
        per_batch={str(b): s for b, s in stats.items()},
        histogram=error_histogram(errors),
        **details,
    )


def check_numerics(
    artifact: ArtifactSpec,
    contract: Contract,
    golden: Golden,
    runner: Runner,
    runs: RunsByBatch | None = None,
) -> list[CheckResult]:
    """Run the artifact on the goldens at every golden batch size, then judge the outputs.
    ``runs``, when given, receives the outputs (pipelines and ``--save-outputs`` reuse them)."""
    seconds: dict[str, float] = {}
    per_batch: RunsByBatch = {}
    for batch in contract.golden_batches(artifact):
        start = time.perf_counter()
        try:
            per_batch[batch] = run_goldens(runner, contract, golden, batch)
        except Exception as exc:  # a backend failure is a contract violation of this artifact
            message = f"{runner.backend} failed at batch {batch}: {type(exc).__name__}: {exc}"
            return [failed(f"{artifact.key}/numerics", message)]
        seconds[str(batch)] = time.perf_counter() - start
    if runs is not None:
        runs.update(per_batch)
    return judge_numerics(artifact, contract, golden, per_batch, runner.backend, seconds)


def judge_numerics(
    artifact: ArtifactSpec,
    contract: Contract,
    golden: Golden,
    per_batch: RunsByBatch,
    backend: str,
    seconds: dict[str, float] | None = None,
) -> list[CheckResult]:
    """One result per output, each bound judged on its worst batch size: a pure function of the
    outputs, the goldens and the artifact's bounds (fresh runs or stored ones)."""
    missing = [b for b in contract.golden_batches(artifact) if b not in per_batch]
    if missing:
        return [failed(f"{artifact.key}/numerics", f"no outputs at batch sizes {missing}")]
    results = []
    for spec in contract.outputs:
        tolerance = artifact.tolerance_for(spec.name)
        name = f"{artifact.key}/numerics[{spec.name}]"
        if any(spec.name not in outputs for outputs in per_batch.values()):
            results.append(failed(name, f"no {spec.name} among the outputs"))
            continue
        results.append(
            judge(
                name,
                {batch: outputs[spec.name] for batch, outputs in per_batch.items()},
                golden.tensors[spec.name],
                tolerance.bounds if tolerance else (),
                spec.unit_norm,
                backend=backend,
                compute_unit=compute_unit_of(backend),
                seconds=seconds or {},
            )
        )
    invariance = judge_batch_invariance(artifact, contract, per_batch)
    return results + ([invariance] if invariance else [])


def judge_batch_invariance(
    artifact: ArtifactSpec, contract: Contract, per_batch: RunsByBatch
) -> CheckResult | None:
    """Each golden row's outputs at every golden batch size against the same row at batch 1, held
    to the artifact's ``batch_invariance`` bound: a text's result must not depend on its
    batch-mates (dynamic activation scales can make it). None when the contract states no bound."""
    bound = artifact.batch_invariance
    alone = per_batch.get(1)
    if bound is None or alone is None:
        return None
    metric = METRICS[bound.metric]
    values = {
        f"{spec.name}@{batch}": metric.compute(outputs[spec.name], alone[spec.name])
        for batch, outputs in per_batch.items()
        if batch != 1
        for spec in contract.outputs
        if spec.name in outputs and spec.name in alone
    }
    if not values:
        return None
    ranked = sorted(values, key=lambda name: values[name])
    worst_key = ranked[0] if metric.direction == ">=" else ranked[-1]
    worst = values[worst_key]
    problems = (
        [] if within(bound, worst) else [f"{bound.metric} {worst:.8g} at {worst_key}, beyond {bound.limit:g}"]
    )
    return verdict(
        f"{artifact.key}/batch-invariance",
        problems,
        f"rows at batch {', '.join(str(b) for b in sorted(per_batch) if b != 1)} against batch 1: "
        f"{bound.metric} {worst:.8g} ({metric.direction} {bound.limit:g}; worst {worst_key})",
        values=values,
        budget_used=budget_used(bound, worst),
    )


def compute_unit_of(backend: str) -> str:
    """The hardware a result was computed on, from its backend label (stored runs included)."""
    if backend.startswith("Core ML runtime ("):
        return backend[len("Core ML runtime (") :].split(")")[0]
    if backend.startswith("MIL executor"):
        return "CPU, emulating Core ML (fp16 storage, fp32 arithmetic)"
    return "CPU"


def name_nonfinite_op(
    results: list[CheckResult],
    runner: Runner,
    path: Path,
    contract: Contract,
    golden: Golden,
    runs: RunsByBatch,
) -> list[CheckResult]:
    """Where an output holds NaN or Inf, run the first such golden row alone, op by op (the MIL
    executor, or onnxruntime with every node's output exposed), and name the first op whose
    output is not finite: where an fp16 overflow starts. The Core ML runtime keeps no
    intermediates, so its results are returned as they are."""
    from verify.backends.onnx_trace import OnnxTrace
    from verify.backends.runners import MILRunner, OnnxRunner
    from verify.backends.traced import first_nonfinite_op

    if not any(r.details.get("nonfinite_batches") for r in results):
        return results
    rows = [
        int(row)
        for outputs in runs.values()
        for value in outputs.values()
        for row in np.flatnonzero(~np.isfinite(value.reshape(len(value), -1)).all(axis=1))
    ]
    if not rows or not isinstance(runner, MILRunner | OnnxRunner):
        return results
    first = min(rows)
    inputs = golden.batch([spec.name for spec in contract.inputs], np.array([first]))
    try:
        if isinstance(runner, MILRunner):
            found = first_nonfinite_op(runner.executor, inputs)
        else:
            found = first_nonfinite_op(OnnxTrace(path), inputs)
    except Exception:  # the run's own failure is already reported
        return results
    if found is None:
        return results
    op_type, op_name = found
    where = f"first non-finite op: {op_type} {op_name!r} (golden row {first} alone)"
    return [
        replace(
            r,
            message=f"{r.message}; {where}",
            details={**r.details, "first_nonfinite_op": [op_type, op_name]},
        )
        if r.details.get("nonfinite_batches")
        else r
        for r in results
    ]
