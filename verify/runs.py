"""Stored runs: each artifact's outputs on the goldens, per batch size, kept apart from judging.

``verify-contract --save-outputs DIR`` writes one safetensors file per artifact,
``DIR/<contract>/<artifact>.safetensors`` with tensors ``<batch>/<output>``, and records the
backend and the environment that produced them. ``--load-outputs DIR`` judges them again without
running any model, as Polygraphy keeps ``RunResults`` apart from ``compare_accuracy``; with
``--contract-overrides FILE`` a reviewer tries other bounds in seconds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from contracts import ArtifactSpec, Bound, Contract, OutputTolerance
from verify.checks.numerics import RunsByBatch
from verify.compare import METRICS
from verify.result import UnusableInput

RUNS_FORMAT = 1
_KEY = "coreml_contract_runs"


@dataclass(frozen=True)
class StoredRuns:
    runs: RunsByBatch
    backend: str
    environment: str


def runs_path(root: Path, contract: str, artifact: str) -> Path:
    return Path(root) / contract / f"{artifact}.safetensors"


def save_runs(root: Path, contract: str, artifact: str, runs: RunsByBatch, backend: str) -> Path:
    """Write one artifact's runs (atomically: a reader never sees half a file)."""
    from safetensors.numpy import save_file

    from verify.self_golden import environment_id

    path = runs_path(root, contract, artifact)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {
        f"{batch}/{name}": np.ascontiguousarray(value)
        for batch, outputs in runs.items()
        for name, value in outputs.items()
    }
    info = {
        "format": RUNS_FORMAT,
        "contract": contract,
        "artifact": artifact,
        "backend": backend,
        "environment": environment_id(backend),
    }
    partial = path.with_suffix(".partial")
    save_file(tensors, str(partial), metadata={_KEY: json.dumps(info, sort_keys=True)})
    os.replace(partial, path)
    return path


def load_runs(root: Path, contract: str, artifact: str) -> StoredRuns:
    """One artifact's stored runs; ValueError with a one-line reason when they cannot be used."""
    from safetensors import safe_open

    path = runs_path(root, contract, artifact)
    if not path.is_file():
        raise ValueError(f"no stored run {path}")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            info = json.loads((handle.metadata() or {})[_KEY])
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # a truncated or foreign file
        raise ValueError(f"{path}: not a stored run ({type(exc).__name__}: {exc})") from None
    if info.get("format") != RUNS_FORMAT or (info.get("contract"), info.get("artifact")) != (
        contract,
        artifact,
    ):
        raise ValueError(
            f"{path}: holds {info.get('contract')}/{info.get('artifact')}, not {contract}/{artifact}"
        )
    runs: RunsByBatch = {}
    for key, value in tensors.items():
        batch, _, name = key.partition("/")
        runs.setdefault(int(batch), {})[name] = value
    return StoredRuns(runs, str(info["backend"]), str(info["environment"]))


#: contract -> artifact key -> output -> metric -> limit
Overrides = dict[str, dict[str, dict[str, dict[str, float]]]]


def read_overrides(path: Path, contracts: dict[str, Contract]) -> Overrides:
    """A JSON file of bounds to judge with instead of the contract's:
    ``{"encoder_v1": {"onnx-int8": {"embedding": {"min_cosine": 0.999}}}}``."""
    try:
        data: Any = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnusableInput(f"--contract-overrides {path}: {exc}") from None
    problems = []
    if not isinstance(data, dict):
        problems.append("expected a JSON object")
        data = {}
    for name, artifacts in data.items():
        contract = contracts.get(name)
        if contract is None or not isinstance(artifacts, dict):
            problems.append(f"unknown contract {name!r}")
            continue
        keys = {a.key for a in contract.artifacts}
        outputs = {o.name for o in contract.outputs}
        for key, per_output in artifacts.items():
            if key not in keys or not isinstance(per_output, dict):
                problems.append(f"{name}: unknown artifact {key!r}")
                continue
            for output, metrics in per_output.items():
                if output not in outputs or not isinstance(metrics, dict):
                    problems.append(f"{name}/{key}: unknown output {output!r}")
                    continue
                for metric, limit in metrics.items():
                    if metric not in METRICS or isinstance(limit, bool) or not isinstance(limit, int | float):
                        problems.append(f"{name}/{key}[{output}]: {metric!r}: {limit!r} is no metric limit")
    if problems:
        raise UnusableInput(f"--contract-overrides {path}: " + "; ".join(problems[:3]))
    return data


def with_overrides(contract: str, artifact: ArtifactSpec, overrides: Overrides) -> ArtifactSpec:
    """``artifact`` with the overridden limits: a bound the contract sets keeps what it measured;
    a metric it does not bound is added."""
    chosen = overrides.get(contract, {}).get(artifact.key, {})
    if not chosen:
        return artifact
    tolerances = {t.output: list(t.bounds) for t in artifact.tolerances}
    for output, metrics in chosen.items():
        bounds = tolerances.setdefault(output, [])
        for metric, limit in metrics.items():
            old = next((b for b in bounds if b.metric == metric), None)
            if old is None:
                bounds.append(Bound(metric, float(limit)))
            else:
                bounds[bounds.index(old)] = Bound(metric, float(limit), old.measured)
    return replace(
        artifact,
        tolerances=tuple(OutputTolerance(output, tuple(bounds)) for output, bounds in tolerances.items()),
    )
