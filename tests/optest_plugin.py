"""pytest plugin: coremltools' own op tests, judged by the MIL executor.

coremltools ships its op test suite in the wheel (``coremltools/converters/mil/mil/ops/tests``).
Each case builds a MIL program, converts it, and hands the model to ``compare_backend``, which
predicts with the Core ML runtime on macOS and checks nothing elsewhere. This plugin replaces
``compare_backend`` in every loaded module with a version that runs the ML Program through
:class:`verify.backends.mil.MILProgramExecutor` and applies the same comparison (its atol/rtol, widened
for fp16 as coremltools widens them, and the allowed mismatch ratio).

Cases the executor cannot judge are skipped, with the reason: NeuralNetwork models, stateful
models, and programs with an op the executor does not register. ``OPTEST_SUMMARY=path`` writes
the counts of judged, passed and skipped cases as JSON; ``OPTEST_BREAK=op`` replaces that op's
implementation with a wrong one (the negative control: the plugin must then fail cases).

Run: ``PYMIL_TEST_TARGETS=mlprogram INCLUDE_MIL_FP32_UNIT_TESTS=1 python -m pytest -p
tests.optest_plugin --pyargs coremltools.converters.mil.mil.ops.tests.iOS17.test_activation``
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from typing import Any

import numpy as np
import pytest

COUNTS: Counter[str] = Counter()


def _broken(op_type: str) -> None:
    from verify.backends.mil import ops

    original = ops.REGISTRY[op_type]

    def wrong(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(ctx, *args, **kwargs)
        if isinstance(result, tuple):
            return result
        result = np.asarray(result)
        return result + 1 if result.dtype.kind in "fiu" else result

    ops.REGISTRY[op_type] = wrong


def executor_compare_backend(
    mlmodel: Any,
    input_key_values: dict[str, Any],
    expected_outputs: dict[str, Any] | None,
    dtype: str = "fp32",
    atol: float = 1e-04,
    rtol: float = 1e-05,
    also_compare_shapes: bool = True,
    state: Any = None,
    allow_mismatch_ratio: float = 0.0,
) -> dict[str, np.ndarray]:
    from coremltools.converters.mil.testing_utils import _get_coreml_out_from_dict

    from verify.backends.mil import MILProgramExecutor, UnsupportedOpError

    if mlmodel.get_spec().WhichOneof("Type") != "mlProgram":
        COUNTS["skipped: not an ML Program"] += 1
        pytest.skip("not an ML Program: the executor runs ML Programs only")
    if state is not None:
        COUNTS["skipped: stateful"] += 1
        pytest.skip("stateful model: the executor has no state")
    try:
        executor = MILProgramExecutor(mlmodel.package_path)
    except UnsupportedOpError as exc:
        COUNTS["skipped: op not registered"] += 1
        pytest.skip(f"not registered in the executor: {exc}")
    inputs = {}
    for name, value in input_key_values.items():
        value = np.asarray(value)  # coremltools feeds scalars and float64 as float32
        inputs[name] = value.astype(np.float32) if value.dtype.kind == "f" or value.shape == () else value
    COUNTS["judged"] += 1
    predicted = executor.run(inputs)
    if dtype == "fp16":  # coremltools' own widening for fp16 backends
        atol, rtol = max(atol * 100.0, 5e-1), max(rtol * 100.0, 5e-2)
    for name, expected in (expected_outputs or {}).items():
        actual = _get_coreml_out_from_dict(predicted, name)
        expected = np.asarray(expected)
        if also_compare_shapes:
            assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
        try:
            np.testing.assert_allclose(actual, expected, atol=atol, rtol=rtol)
        except AssertionError:
            mismatched = np.sum(~np.isclose(actual, expected, atol=atol, rtol=rtol))
            if mismatched / max(expected.size, 1) > allow_mismatch_ratio:
                raise
    COUNTS["passed"] += 1
    return predicted


def _patch_loaded_modules() -> None:
    from coremltools.converters.mil import testing_utils

    original = testing_utils.compare_backend
    for module in list(sys.modules.values()):
        if getattr(module, "compare_backend", None) is original:
            module.compare_backend = executor_compare_backend


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("OPTEST_BREAK"):
        _broken(os.environ["OPTEST_BREAK"])
    _patch_loaded_modules()


def pytest_collection_finish(session: pytest.Session) -> None:
    import gc

    _patch_loaded_modules()  # test modules import compare_backend by name at collection
    # ct.convert calls gc.collect() every time: 0.46 s over the heap torch and coremltools leave
    # behind. Freezing what is loaded now makes each collection scan only newer objects.
    gc.freeze()


def pytest_sessionfinish(session: pytest.Session) -> None:
    target = os.environ.get("OPTEST_SUMMARY")
    if target:
        with open(target, "w") as handle:
            json.dump(dict(COUNTS), handle)


def _snake(name: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


#: Test classes covering several ops, one per value of their ``mode`` parameter: class -> op prefix.
_FAMILIES = {"TestElementwiseUnary": "", "TestElementwiseBinary": "", "TestReduction": "reduce_"}


def _op_of(item: pytest.Item) -> str | None:
    """The op a case tests: its class name (TestLayerNorm -> layer_norm), or for classes that
    test a family, the registered op named by a ``mode``/``op_type`` parameter."""
    from verify.backends.mil.ops import REGISTRY

    cls = getattr(item, "cls", None)
    if cls is None:
        return None
    if cls.__name__ in _FAMILIES:
        mode = getattr(getattr(item, "callspec", None), "params", {}).get("mode")
        op = f"{_FAMILIES[cls.__name__]}{mode}"
        return op if isinstance(mode, str) and op in REGISTRY else None
    name = _snake(cls.__name__.removeprefix("Test").removeprefix("Normalization"))
    return name if name in REGISTRY else None


def _backend_wanted(item: pytest.Item) -> bool:
    backend = getattr(getattr(item, "callspec", None), "params", {}).get("backend")
    if not isinstance(backend, tuple) and not hasattr(backend, "backend"):
        return True
    kind, precision = (backend.backend, backend.precision) if hasattr(backend, "backend") else backend[:2]
    precisions = os.environ.get("OPTEST_PRECISIONS", "fp32,fp16").split(",")
    opset = getattr(backend, "opset_version", None)
    opsets = os.environ.get("OPTEST_OPSETS")
    if opsets and opset is not None and str(int(opset)) not in opsets.split(","):
        return False
    return kind == "mlprogram" and precision in precisions


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the cases of registered ops on the ML Program backends asked for: the others would be
    converted only to be skipped."""
    keep, drop = [], []
    for item in items:
        (keep if _op_of(item) is not None and _backend_wanted(item) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    COUNTS["deselected"] = len(drop)
