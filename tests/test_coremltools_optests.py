"""The MIL executor against coremltools' own op tests (issue 13, class 7).

The coremltools wheel ships its op test suite; on Linux its comparison checks nothing. Here it runs
in a child pytest with ``tests/optest_plugin.py``, which judges every case of a registered op with
the executor. fp32 ML Programs at the contracts' opset run here; ``tox -e optests`` runs fp16 too,
at every opset (README, "Checked against coremltools' own op tests").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from verify.backends.mil import ops

ROOT = Path(__file__).resolve().parents[1]


def optest_modules() -> list[str]:
    """Every op test module the installed coremltools ships."""
    import coremltools

    package = Path(coremltools.__file__).parent
    tests = package / "converters" / "mil" / "mil" / "ops" / "tests"
    return sorted(
        ".".join(path.relative_to(package.parent).with_suffix("").parts)
        for path in tests.glob("iOS1*/test_*.py")
    )


def run_optests(
    tmp_path: Path,
    *pytest_args: str,
    precisions: str = "fp32",
    opsets: tuple[int, ...] = (),
    broken: str | None = None,
) -> tuple[int, dict, str]:
    summary = tmp_path / "summary.json"
    env = {
        **os.environ,
        "PYMIL_TEST_TARGETS": "mlprogram",
        "INCLUDE_MIL_FP32_UNIT_TESTS": "1",
        "OPTEST_PRECISIONS": precisions,
        "OPTEST_SUMMARY": str(summary),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    if opsets:
        env["OPTEST_OPSETS"] = ",".join(map(str, opsets))
    if broken:
        env["OPTEST_BREAK"] = broken
    command = [
        sys.executable, "-m", "pytest", "-p", "tests.optest_plugin", "-q", "-o", "addopts=",
        "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-c", os.devnull, "-W", "ignore",
        *pytest_args,
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    counts = json.loads(summary.read_text()) if summary.exists() else {}
    return done.returncode, counts, done.stdout + done.stderr


@pytest.mark.slow
def test_coremltools_op_tests_pass_through_the_executor(tmp_path):
    """fp32 cases at the opsets the contracts deploy to (iOS17); ``tox -e optests`` runs them all."""
    from contracts import REGISTRY

    opsets = tuple(sorted({contract.coreml.spec_version for contract in REGISTRY.values()}))
    pyargs = [arg for module in optest_modules() for arg in ("--pyargs", module)]
    # coremltools' own wall-clock assertion (type inference < 10 ms) fails on a loaded machine
    timing = ("-k", "not test_efficient_type_inference")
    code, counts, output = run_optests(tmp_path, *pyargs, *timing, opsets=opsets)
    assert code == 0, output[-4000:]
    assert counts["judged"] >= 120 and counts["passed"] == counts["judged"], counts
    assert "skipped: op not registered" not in counts, output[-4000:]  # identity, reduce_argmin


@pytest.mark.slow
def test_a_wrong_op_fails_the_op_tests(tmp_path):
    """Negative control: softmax shifted by one must fail coremltools' softmax cases."""
    module = next(m for m in optest_modules() if m.endswith("iOS14.test_activation"))
    code, counts, output = run_optests(tmp_path, "--pyargs", module, "-k", "TestSoftmax", broken="softmax")
    assert code == 1 and counts["judged"] > counts.get("passed", 0) and "AssertionError" in output


def test_squeeze_keeps_axes_whose_size_is_not_one():
    """MIL's squeeze removes only size-1 dims among ``axes`` (iOS15 type_inference)."""
    context = ops.OpContext("squeeze", "s", ops.IOS17)
    x = np.zeros((1, 3, 1), np.float32)
    assert ops.REGISTRY["squeeze"](context, x, axes=np.array([0, 1])).shape == (3, 1)
    assert ops.REGISTRY["squeeze"](context, x).shape == (3,)


def test_identity_and_reduce_argmin():
    context = ops.OpContext("reduce_argmin", "r", ops.IOS17)
    x = np.array([[3.0, 1.0, 2.0], [0.0, 5.0, -1.0]], np.float32)
    assert ops.REGISTRY["reduce_argmin"](context, x, axis=1).tolist() == [1, 2]
    assert ops.REGISTRY["reduce_argmin"](context, x, axis=0, keep_dims=True).shape == (1, 3)
    assert ops.REGISTRY["identity"](context, x) is x
