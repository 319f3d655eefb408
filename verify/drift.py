"""Drift between two versions of a bundle: run both on the union of their golden inputs and
compare the outputs, row by row, against the contract's tolerance for that artifact."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from contracts import ArtifactSpec, Contract, TensorSpec
from golden.store import Golden
from verify.backends.runners import Runner, artifact_runner
from verify.bundle import Bundle
from verify.checks.numerics import run_goldens
from verify.compare import METRICS, statistics, within

IDENTICAL, WITHIN, BREAKING = "identical", "within tolerance", "breaking"
NEIGHBOURS = 5


@dataclass
class OutputDrift:
    output: str
    stats: dict[str, float]
    verdict: str
    problems: list[str] = field(default_factory=list)


@dataclass
class DriftReport:
    contract: str
    breaking_change: str  # what a breaking verdict means (the contract says)
    artifact: str
    rows: int
    outputs: list[OutputDrift]
    notes: list[str]

    @property
    def verdict(self) -> str:
        verdicts = {o.verdict for o in self.outputs}
        return next((v for v in (BREAKING, WITHIN) if v in verdicts), IDENTICAL)

    @property
    def message(self) -> str:
        if self.verdict == BREAKING:
            return f"breaking: {self.breaking_change}"
        return self.verdict


def union_inputs(contract: Contract, old: Golden, new: Golden) -> Golden:
    """Both bundles' golden inputs, sequence inputs padded to a common length, duplicates dropped."""
    tensors = {}
    for spec in contract.inputs:
        a, b = old.tensors[spec.name], new.tensors[spec.name]
        if a.ndim == 2 and a.shape[1] != b.shape[1] and len(spec.shape) == 2 and not spec.shape[1].is_fixed:
            width = max(a.shape[1], b.shape[1])
            a, b = (np.pad(x, ((0, 0), (0, width - x.shape[1]))) for x in (a, b))
        tensors[spec.name] = np.concatenate([a, b])
    total = len(tensors[contract.inputs[0].name])
    keys = [b"".join(tensors[s.name][row].tobytes() for s in contract.inputs) for row in range(total)]
    rows = sorted({key: row for row, key in reversed(list(enumerate(keys)))}.values())
    return Golden({name: value[rows] for name, value in tensors.items()}, {})


def neighbour_agreement(old: np.ndarray, new: np.ndarray, k: int = NEIGHBOURS) -> float:
    """Mean overlap of each row's k nearest neighbours (cosine) under the old and new outputs."""
    k = min(k, len(old) - 1)
    if k < 1:
        return 1.0

    def neighbours(x: np.ndarray) -> np.ndarray:
        unit = x.astype(np.float64) / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        similarity = unit @ unit.T
        np.fill_diagonal(similarity, -np.inf)
        return np.argsort(-similarity, axis=1, kind="stable")[:, :k]

    a, b = neighbours(old), neighbours(new)
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b, strict=True)]))


def _runner(artifact: ArtifactSpec, contract: Contract, path: Path) -> Runner:
    return artifact_runner(contract, artifact, path)


def compare_outputs(
    artifact: ArtifactSpec, spec: TensorSpec, old: np.ndarray, new: np.ndarray
) -> OutputDrift:
    name = spec.name
    tolerance = artifact.tolerance_for(name)
    bounds = tolerance.bounds if tolerance else ()
    extra = ("flip_rate", "top10_overlap") if spec.decisions else ()
    stats = statistics(new, old, (*extra, *(b.metric for b in bounds)))
    if not spec.decisions:
        stats["nn_agreement"] = neighbour_agreement(old, new)
    if np.array_equal(old, new):
        return OutputDrift(name, stats, IDENTICAL)
    problems = [
        f"{b.metric} {stats[b.metric]:.3g} beyond {METRICS[b.metric].direction} {b.limit:g}"
        for b in bounds
        if not within(b, stats[b.metric])
    ]
    if not bounds:
        problems.append("the contract sets no tolerance for this output")
    return OutputDrift(name, stats, BREAKING if problems else WITHIN, problems)


def diff_bundles(old: Bundle, new: Bundle, old_golden: Golden, new_golden: Golden, key: str) -> DriftReport:
    """Run artifact ``key`` of both bundles on the union of their golden inputs and compare."""
    contract = new.registered
    artifact = contract.artifact(key)
    inputs = union_inputs(contract, old_golden, new_golden)
    batch = contract.batch.upper
    outputs = [
        run_goldens(_runner(artifact, contract, bundle.path(artifact.filename)), contract, inputs, batch)
        for bundle in (old, new)
    ]
    drifts = [
        compare_outputs(artifact, spec, outputs[0][spec.name], outputs[1][spec.name])
        for spec in contract.outputs
    ]
    notes = []
    fingerprints = [(b.manifest or {}).get("encoder_fingerprint") for b in (old, new)]
    if fingerprints[0] != fingerprints[1]:
        notes.append(
            f"encoder fingerprint {str(fingerprints[0])[:12]} → {str(fingerprints[1])[:12]}: "
            "personality bundles pinned to the old encoder must be rebuilt against the new one"
        )
    return DriftReport(contract.name, contract.breaking_change, key, inputs.rows, drifts, notes)
