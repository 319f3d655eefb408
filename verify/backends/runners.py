"""Runners execute one artifact. Each enforces the contract on its inputs first:
onnxruntime alone would accept a batch of 65, the contract does not."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from contracts import Contract

COMPUTE_UNITS = ("CPU_ONLY", "ALL", "CPU_AND_NE", "CPU_AND_GPU")


class InputContractError(ValueError):
    """Inputs outside the contract: wrong names, dtype, rank, a dimension out of range, or NaN/Inf."""


def check_inputs(contract: Contract, inputs: dict[str, np.ndarray]) -> None:
    expected = {spec.name for spec in contract.inputs}
    if set(inputs) != expected:
        raise InputContractError(f"inputs {sorted(inputs)} != contract inputs {sorted(expected)}")
    for spec in contract.inputs:
        array = inputs[spec.name]
        if array.dtype != np.dtype(spec.dtype):
            raise InputContractError(f"{spec.name}: dtype {array.dtype} != {spec.dtype}")
        if array.ndim != len(spec.shape):
            raise InputContractError(f"{spec.name}: rank {array.ndim} != {len(spec.shape)}")
        for size, dim in zip(array.shape, spec.shape, strict=True):
            if not dim.accepts(size):
                raise InputContractError(
                    f"{spec.name}: {dim.name} {size} outside the contract range {dim.lower}..{dim.upper}"
                )
        if spec.values is not None and array.size:
            low, high = spec.values
            found_low, found_high = int(array.min()), int(array.max())
            if found_low < low or found_high > high:
                raise InputContractError(
                    f"{spec.name}: values {found_low}..{found_high} outside the contract range {low}..{high}"
                )
        # One vectorised pass (~30 us for 64 x 1536 float32): a NaN or Inf never has a meaning, and
        # int8 ONNX graphs quantise per batch, so one bad row turns others wrong or all to NaN.
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(axis=1)).tolist()
            shown = ", ".join(map(str, bad[:8])) + (", ..." if len(bad) > 8 else "")
            plural = "s" if len(bad) > 1 else ""
            raise InputContractError(f"{spec.name}: NaN or Inf in row{plural} {shown}; inputs must be finite")


class Runner:
    backend = "abstract"

    def __init__(self, contract: Contract) -> None:
        self.contract = contract

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(self.contract, inputs)
        outputs = self._run(inputs)
        return {spec.name: np.asarray(outputs[spec.name]) for spec in self.contract.outputs}

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError


class OnnxRunner(Runner):
    def __init__(self, contract: Contract, path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        super().__init__(contract)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.backend = f"onnxruntime {ort.__version__} CPU"

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, inputs), strict=True))


def native_coreml_available() -> bool:
    """Core ML prediction needs macOS and coremltools' native extension."""
    if platform.system() != "Darwin":
        return False
    try:
        import coremltools.libcoremlpython  # noqa: F401
    except ImportError:
        return False
    return True


class NativeCoreMLRunner(Runner):
    def __init__(self, contract: Contract, path: Path, compute_units: str = "CPU_ONLY") -> None:
        import coremltools as ct

        super().__init__(contract)
        self.model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, compute_units))
        self.backend = f"Core ML runtime ({compute_units})"

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.model.predict(inputs)


class MILRunner(Runner):
    def __init__(self, contract: Contract, path: Path) -> None:
        from verify.backends.mil import MILProgramExecutor

        super().__init__(contract)
        self.executor = MILProgramExecutor(path)
        self.backend = "MIL executor (numpy)"

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.executor.run(inputs)


def coreml_backend(compute_units: str | None, native_available: bool) -> str:
    """Pick the Core ML backend: the real runtime on macOS, the MIL executor elsewhere.

    ``compute_units`` of None means the default (CPU_ONLY on macOS); naming one where the
    runtime is absent is an error rather than a silent fallback.
    """
    if compute_units is not None and compute_units not in COMPUTE_UNITS:
        raise ValueError(f"compute units {compute_units!r} not one of {', '.join(COMPUTE_UNITS)}")
    if native_available:
        return compute_units or "CPU_ONLY"
    if compute_units is not None:
        raise ValueError(f"--compute-units {compute_units} needs the Core ML runtime (macOS)")
    return "mil"


def coreml_runner(contract: Contract, path: Path, compute_units: str | None = None) -> Runner:
    backend = coreml_backend(compute_units, native_coreml_available())
    if backend == "mil":
        return MILRunner(contract, path)
    return NativeCoreMLRunner(contract, path, backend)
