"""Self-goldens: each artifact's own outputs, recorded at build, on a few golden rows.

An fp16 or int8 artifact is held to the fp32 goldens with bounds as wide as its own
quantisation error, so an edit smaller than that error passes them. Its self-goldens hold it to
what it computed when it was built, with bounds set from measured run-to-run noise of the same
backend (docs/TOLERANCES.md, "Self-goldens"). Each row runs alone (batch 1), so a row's outputs
do not depend on its batch-mates (dynamic int8 scales do), and the verifier reuses the outputs of
its batch-1 numerics run: the check costs no extra inference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contracts import ArtifactSpec, Contract
from golden.store import Golden
from verify.backends.runners import Runner
from verify.result import CheckResult, failed, skipped

SELF_GOLDEN_DIR = "golden/self"
SELF_GOLDEN_BATCH = 1
SELF_GOLDEN_FORMAT = 1


def self_golden_path(key: str) -> str:
    return f"{SELF_GOLDEN_DIR}/{key}.safetensors"


def self_golden_rows(contract: Contract, golden: Golden) -> np.ndarray:
    """``contract.self_golden_rows`` golden rows spread from the shortest to the longest text."""
    from verify.checks.numerics import length_order

    order = length_order(golden)
    picks = np.linspace(0, golden.rows - 1, num=min(contract.self_golden_rows, golden.rows))
    return np.sort(order[np.round(picks).astype(int)])


def run_rows(runner: Runner, contract: Contract, golden: Golden, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Each of ``rows`` through ``runner`` alone, stacked in ``rows`` order."""
    names = [spec.name for spec in contract.inputs]
    outputs = [runner.run(golden.batch(names, np.array([row]))) for row in rows]
    return {spec.name: np.concatenate([o[spec.name] for o in outputs]) for spec in contract.outputs}


_CPU_FEATURES = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "neon",
    "asimd",
)


def _numpy_blas() -> str:
    """numpy's own BLAS and the kernel it picked (other libraries' BLAS, such as scipy's, may be
    loaded in one process and not another: they do not decide the executor's numerics)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "blas ?"
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    own = [i for i in blas if "numpy" in str(i.get("filepath", ""))] or blas[:1]
    described = [f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')}" for i in own]
    return " ".join(described) or "blas ?"


def environment_id(backend: str) -> str:
    """What decides whether outputs repeat bit for bit: the backend and its version, numpy and its
    BLAS kernels (the MIL executor), the CPU's vector features (onnxruntime picks kernels by them)."""
    import platform

    parts = [backend, f"numpy {np.__version__}", platform.machine()]
    parts.append(_numpy_blas())
    try:
        flags = (
            next(
                line
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith(("flags", "Features"))
            )
            .split(":", 1)[1]
            .split()
        )
        parts.append("+".join(f for f in _CPU_FEATURES if f in flags))
    except (OSError, StopIteration):
        parts.append(platform.processor())
    return " | ".join(parts)


@dataclass(frozen=True)
class SelfGolden:
    rows: np.ndarray
    backend: str
    tensors: dict[str, np.ndarray]
    environment: str = ""


def write_self_golden(target: Path, recorded: SelfGolden) -> None:
    from safetensors.numpy import save_file

    target.parent.mkdir(parents=True, exist_ok=True)
    facts = {
        "self_golden_format": SELF_GOLDEN_FORMAT,
        "rows": [int(r) for r in recorded.rows],
        "batch": SELF_GOLDEN_BATCH,
        "backend": recorded.backend,
        "environment": recorded.environment,
    }
    # one metadata key: safetensors writes several in a random order, and rebuilds must be identical
    metadata = {"self_golden": json.dumps(facts, sort_keys=True)}
    save_file({k: np.ascontiguousarray(v) for k, v in recorded.tensors.items()}, str(target), metadata)


def read_self_golden(path: Path) -> SelfGolden:
    """Raises ValueError for a file that is not a readable self-golden."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 (not a dict)
        facts = json.loads(metadata["self_golden"])
        if facts.get("self_golden_format") != SELF_GOLDEN_FORMAT:
            raise ValueError(f"self_golden_format {facts.get('self_golden_format')!r}")
        rows = np.array(facts["rows"], dtype=np.int64)
        return SelfGolden(rows, facts["backend"], tensors, facts.get("environment", ""))
    except (OSError, KeyError, json.JSONDecodeError, TypeError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    except Exception as exc:  # safetensors raises its own SafetensorError for corrupt headers
        raise ValueError(f"{type(exc).__name__}: {exc}") from None


def record_self_golden(runner: Runner, contract: Contract, golden: Golden) -> SelfGolden:
    rows = self_golden_rows(contract, golden)
    outputs = run_rows(runner, contract, golden, rows)
    return SelfGolden(rows, runner.backend, outputs, environment_id(runner.backend))


def check_self_golden(
    artifact: ArtifactSpec,
    contract: Contract,
    recorded: SelfGolden | str,
    batch_one: dict[str, np.ndarray] | None,
    backend: str,
) -> list[CheckResult]:
    """Hold the artifact's batch-1 outputs on the recorded rows to the recording: exactly (within
    ``contract.self_golden_exact``) in the environment that recorded them, else within the
    artifact's ``self_tolerances``. ``recorded`` is the self-golden or why it is unreadable."""
    from verify.checks.numerics import judge

    prefix = f"{artifact.key}/self"
    if isinstance(recorded, str):
        return [failed(prefix, recorded)]
    if recorded.backend != backend:
        return [skipped(prefix, f"recorded with {recorded.backend}; this run used {backend}")]
    if batch_one is None:
        return [skipped(prefix, "no batch-1 outputs (numerics not run)")]
    same_environment = recorded.environment == environment_id(backend)
    results = []
    for name, expected in recorded.tensors.items():
        actual = batch_one.get(name)
        tolerance = artifact.self_tolerance_for(name)
        cross = tolerance.bounds if tolerance else ()
        bounds = (contract.self_golden_exact,) if same_environment else cross
        if actual is None or recorded.rows.max(initial=-1) >= len(actual):
            results.append(failed(f"{prefix}[{name}]", "recorded rows or output not in this run"))
            continue
        result = judge(
            f"{prefix}[{name}]",
            {SELF_GOLDEN_BATCH: actual[recorded.rows]},
            expected,
            bounds,
            backend=backend,
            environment="as recorded" if same_environment else f"recorded in {recorded.environment}",
            rows=[int(r) for r in recorded.rows],
        )
        result.details.pop("histogram", None)  # differences are zero or few: no plot
        results.append(result)
    return results
