"""``*/integer-kernels``: the fast u8s8 kernels give the portable kernels' outputs, bit for bit.

Where this CPU sums u8s8 exactly, :class:`~verify.backends.runners.OnnxRunner` runs an int8
artifact's portable (u8u8) GEMMs with signed weights instead (:mod:`verify.backends.integer_kernels`),
and the numerics are judged on that. This check runs the file as it is on the goldens too, and
fails unless every output is identical: the speed-up must not move a single bit.
"""

from __future__ import annotations

import numpy as np

from contracts import ArtifactSpec, Contract
from golden.store import Golden
from verify.backends.integer_kernels import PORTABLE, exact_u8s8
from verify.backends.runners import OnnxRunner, Runner
from verify.checks.numerics import RunsByBatch, run_goldens
from verify.result import CheckResult, failed, skipped, verdict


def check_integer_kernels(
    artifact: ArtifactSpec, contract: Contract, golden: Golden, runner: Runner, runs: RunsByBatch
) -> CheckResult | None:
    """None unless ``artifact`` is ONNX int8 and its numerics ran here."""
    name = f"{artifact.key}/integer-kernels"
    if artifact.format != "onnx" or artifact.precision != "int8" or not isinstance(runner, OnnxRunner):
        return None
    if not runner.signed_weights:
        why = "its integer GEMMs are not portable u8u8" if exact_u8s8() else "this CPU has no VNNI/AMX"
        return skipped(name, f"the file's own kernels ran ({why}); nothing to compare")
    if not runs:
        return None
    batch = max(runs)
    portable = OnnxRunner(runner.contract, runner.path, runner.threads, integer_kernels=PORTABLE)
    try:
        expected = run_goldens(portable, contract, golden, batch)
    except Exception as exc:
        return failed(name, f"the portable kernels failed at batch {batch}: {type(exc).__name__}: {exc}")
    problems = []
    for output, want in expected.items():
        got = runs[batch][output]
        if not np.array_equal(got, want):
            differing = int(np.sum(got != want))
            delta = float(np.max(np.abs(got.astype(np.float64) - want)))
            problems.append(f"{output}: {differing} values differ, max abs {delta:.3g}")
    return verdict(
        name,
        problems,
        f"numerics ran on u8s8 kernels (exact on this CPU), bit for bit equal to the file's u8u8 "
        f"kernels on {golden.rows} golden rows at batch {batch}",
    )
