"""End-to-end checks: each combination of artifacts that runs together, on the golden texts.

The first stage runs on its goldens' inputs (the golden texts, tokenized at build), each later
stage on the previous stage's output, at every golden batch size of the first model. The last
output is held to the pipeline's bounds against the reference: the last model's goldens on the
first model's golden texts (text → reference encoder → reference PersonalityModel).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from contracts import Bound, OutputTolerance, PipelineContract
from contracts.pipeline import combination_key
from golden.store import Golden
from verify.backends.runners import Runner
from verify.checks.numerics import RunsByBatch, judge, run_goldens
from verify.result import CheckResult, failed, skipped


@dataclass
class StageInput:
    """A pipeline stage's bundle: its contract, goldens, and how to get a runner for an artifact."""

    golden: Golden
    runner: Callable[[str], Runner]  # artifact key -> runner (raises on an unusable artifact)
    runs: dict[str, RunsByBatch]  # artifact key -> outputs on the goldens already computed


def reference_problems(pipeline: PipelineContract, goldens: list[Golden]) -> list[str]:
    """The last stage's goldens must start with the first stage's golden texts, fed with exactly
    the previous stage's golden outputs (bit-identical on a consistent pair of bundles)."""
    problems = []
    first = goldens[0]
    texts = first.info.get("texts")
    for spec, golden in zip(pipeline.stages[1:], goldens[1:], strict=True):
        if golden.info.get("texts", [])[: len(texts or [])] != texts or not texts:
            problems.append(
                f"{spec.contract} goldens were not made on {pipeline.stages[0].contract}'s golden texts"
            )
    for before, spec, previous, golden in zip(
        pipeline.stages, pipeline.stages[1:], goldens, goldens[1:], strict=False
    ):
        produced = previous.tensors[before.produces]
        consumed = golden.tensors[spec.consumes or ""][: len(produced)]
        if consumed.shape != produced.shape or not np.array_equal(consumed, produced):
            rows = (
                len(produced)
                if consumed.shape != produced.shape
                else int((consumed != produced).any(axis=1).sum())
            )
            problems.append(
                f"{spec.contract} golden {spec.consumes} differs from {before.contract}'s golden "
                f"{before.produces} in {rows} of {len(produced)} rows: built from another encoder"
            )
    return problems


def check_pipeline(
    pipeline: PipelineContract,
    artifacts: tuple[str, ...],
    stages: list[StageInput],
    batch_sizes: tuple[int, ...],
    tolerances: tuple[OutputTolerance, ...],
    targets: tuple[str, ...] = (),
) -> CheckResult:
    """Run one combination end to end and judge its last output."""
    key = combination_key(artifacts)
    name = f"pipeline/{key}[{pipeline.output}]"
    rows = stages[0].golden.rows
    expected = stages[-1].golden.tensors[pipeline.output][:rows]
    actual: dict[int, np.ndarray] = {}
    backends = []
    try:
        for batch in batch_sizes:
            current: Golden | None = None
            for spec, stage, artifact in zip(pipeline.stages, stages, artifacts, strict=True):
                cached = stage.runs.get(artifact, {}).get(batch) if current is None else None
                if cached is not None:
                    outputs = cached
                else:
                    runner = stage.runner(artifact)
                    backends.append(runner.backend)
                    source = stage.golden if current is None else current
                    outputs = run_goldens(runner, runner.contract, source, batch)
                current = Golden({_next_input(pipeline, spec): outputs[spec.produces]}, {})
            assert current is not None
            actual[batch] = next(iter(current.tensors.values()))
    except Exception as exc:  # an artifact that cannot run fails its pipeline
        return failed(name, f"{type(exc).__name__}: {exc}", targets=list(targets))
    return judge(
        name,
        actual,
        expected,
        _bounds(tolerances, pipeline.output),
        artifacts=list(artifacts),
        targets=list(targets),
        backend=", ".join(dict.fromkeys(backends)) or "outputs of the numerics checks",
    )


def _next_input(pipeline: PipelineContract, spec) -> str:
    """The input name the next stage consumes, or the output's own name after the last stage."""
    index = pipeline.stages.index(spec)
    if index + 1 < len(pipeline.stages):
        return pipeline.stages[index + 1].consumes or spec.produces
    return spec.produces


def _bounds(tolerances: tuple[OutputTolerance, ...], output: str) -> tuple[Bound, ...]:
    return next((t.bounds for t in tolerances if t.output == output), ())


def with_budgets(
    tolerances: tuple[OutputTolerance, ...], budgets: dict[str, float]
) -> tuple[OutputTolerance, ...]:
    """The project's budgets (metric -> limit) replace or add to the contract's bounds."""
    if not budgets:
        return tolerances
    result = []
    for tolerance in tolerances:
        kept = [b for b in tolerance.bounds if b.metric not in budgets]
        added = [Bound(metric, limit, None) for metric, limit in budgets.items()]
        result.append(OutputTolerance(tolerance.output, (*kept, *added)))
    return tuple(result)


def not_checked(pipeline: PipelineContract, reason: str) -> CheckResult:
    return skipped(f"pipeline/{pipeline.name}", reason)
