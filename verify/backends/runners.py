"""Runners execute one artifact. Each enforces the contract on its inputs first:
onnxruntime alone would accept a batch of 65, the contract does not."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np

from contracts import ArtifactSpec, Contract
from verify.backends.integer_kernels import FASTEST, KERNEL_CHOICES, PORTABLE, fast_model_bytes

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
                allowed = (
                    f"not one of the contract's {dim.describe()}"
                    if dim.choices
                    else (f"outside the contract range {dim.lower}..{dim.upper}")
                )
                raise InputContractError(f"{spec.name}: {dim.name} {size} {allowed}")
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

    def run_all(self, feeds: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """``run`` on every feed (independent batches), results in the feeds' order."""
        return [self.run(feed) for feed in feeds]


class OnnxRunner(Runner):
    """onnxruntime on the CPU. ``integer_kernels="fastest"`` runs portable int8 GEMMs on the
    u8s8 kernels where this CPU sums them exactly (VNNI/AMX; same outputs, bit for bit:
    :mod:`verify.backends.integer_kernels`); ``"portable"`` runs the file as it is."""

    def __init__(
        self, contract: Contract, path: Path, threads: int = 0, integer_kernels: str = FASTEST
    ) -> None:
        import onnxruntime as ort

        if integer_kernels not in KERNEL_CHOICES:
            raise ValueError(f"integer_kernels={integer_kernels!r}: choose from {', '.join(KERNEL_CHOICES)}")
        super().__init__(contract)
        self.path = path
        self.threads = threads
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        signed = fast_model_bytes(path) if integer_kernels == FASTEST else None
        self.signed_weights = signed is not None
        source: str | bytes = signed if signed is not None else str(path)
        self.session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        # the same string either way: both kernels give the same bits (``*/integer-kernels``)
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


#: Batches of fewer rows than this, on average, run side by side in MILRunner.run_all. On the
#: goldens, side by side against one at a time: batch 1, 1.30-1.74x faster; batch 7, 1.15-2.09x;
#: batch 64, 0.67-0.72x on the encoder (its slabs already share those rows out).
CONCURRENT_ROWS = 8


class MILRunner(Runner):
    def __init__(self, contract: Contract, path: Path, use_slabs: bool = True) -> None:
        from verify.backends.mil import MILProgramExecutor

        super().__init__(contract)
        self.executor = MILProgramExecutor(path, use_slabs=use_slabs)
        self.backend = "MIL executor (numpy)"

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.executor.run(inputs)

    def run_all(self, feeds: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        """Small batches are shared over the CPUs, each run in one thread: a batch of a few rows
        keeps about one core busy alone. Larger ones run one at a time, their rows shared over
        the CPUs (slabs). The outputs are the same bits either way (an op computes a row the
        same way on one thread as on several)."""
        from verify.backends.mil import ops, parallel

        rows = sum(len(next(iter(feed.values()))) for feed in feeds if feed)
        if len(feeds) < 2 or rows >= CONCURRENT_ROWS * len(feeds):
            return super().run_all(feeds)
        results: list[dict[str, np.ndarray]] = [{} for _ in feeds]

        def work(index: int) -> None:
            results[index] = self.run(feeds[index])

        with ops.one_blas_thread():
            parallel.over_items(work, len(feeds))
        return results


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


class EnumeratedRunner(Runner):
    """Runs an enumerated-shapes artifact as the app does: each row alone, its padding trimmed,
    padded again to the next enumerated size, and without the inputs the artifact derives (each
    checked to equal what the artifact derives, so no row is silently run with another mask)."""

    def __init__(self, contract: Contract, artifact: ArtifactSpec, inner: Runner) -> None:
        super().__init__(contract)
        if artifact.enumerated is None:
            raise ValueError(f"{artifact.key} declares no enumerated inputs")
        self.enumerated, self.inner, self.backend = artifact.enumerated, inner, inner.backend
        self.fed = [spec.name for spec in contract.artifact_inputs(artifact)]
        self.axis = [d.name for d in contract.inputs[0].shape].index(self.enumerated.dim)

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        enumerated = self.enumerated
        for name, source in enumerated.derived:
            expected = (inputs[source] != enumerated.pad_value).astype(inputs[name].dtype)
            if not np.array_equal(inputs[name], expected):
                row = int(
                    np.flatnonzero((inputs[name] != expected).reshape(len(expected), -1).any(axis=1))[0]
                )
                raise InputContractError(
                    f"{name}: row {row} is not ({source} != {enumerated.pad_value}), which this "
                    f"enumerated-shapes artifact derives"
                )
        rows: list[dict[str, np.ndarray]] = []
        for row in range(len(inputs[self.fed[0]])):
            fed = {name: np.take(inputs[name], [row], axis=0) for name in self.fed}
            length = _content_length(fed, self.axis, enumerated.pad_value)
            size = enumerated.size_for(length)
            if size is None:
                raise InputContractError(f"row {row}: {length} positions exceed every enumerated size")
            rows.append(
                self.inner.run(
                    {name: _fit(array, self.axis, size, enumerated.pad_value) for name, array in fed.items()}
                )
            )
        return {name: np.concatenate([r[name] for r in rows]) for name in rows[0]} if rows else {}


def _content_length(fed: dict[str, np.ndarray], axis: int, pad_value: int) -> int:
    """Positions up to the last one that is not padding, in any fed input."""
    last = 0
    for array in fed.values():
        moved = np.moveaxis(array != pad_value, axis, -1).reshape(-1, array.shape[axis]).any(axis=0)
        hits = np.flatnonzero(moved)
        last = max(last, int(hits[-1]) + 1 if hits.size else 0)
    return last


def _fit(array: np.ndarray, axis: int, size: int, pad_value: int) -> np.ndarray:
    """``array`` cut or padded with ``pad_value`` to ``size`` along ``axis``."""
    if array.shape[axis] >= size:
        return np.take(array, range(size), axis=axis)
    widths = [(0, 0)] * array.ndim
    widths[axis] = (0, size - array.shape[axis])
    return np.pad(array, widths, constant_values=pad_value)


def artifact_runner(
    contract: Contract, artifact: ArtifactSpec, path: Path, compute_units: str | None = None, threads: int = 0
) -> Runner:
    """The runner for one artifact of ``contract``: onnxruntime or Core ML (the runtime on macOS,
    the MIL executor elsewhere), fed as its shape strategy needs."""
    sees = contract.as_artifact_sees_it(artifact)
    if artifact.format == "onnx":
        kernels = FASTEST if artifact.precision == "int8" else PORTABLE  # no integer GEMMs to look for
        runner: Runner = OnnxRunner(sees, path, threads, kernels)
    else:
        runner = coreml_runner(sees, path, compute_units)
    return runner if artifact.enumerated is None else EnumeratedRunner(contract, artifact, runner)
