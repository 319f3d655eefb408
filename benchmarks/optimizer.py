"""onnxruntime's transformer optimizer on the shipped fp32 encoder, offline, for measurement only.

Two graphs: ``optimize_model`` called on the export as it is, and after the four rewrites of
``benchmarks.quant_search.fuse_bert`` that let it fuse attention. Each is held to the contract
the way ``verify-contract`` holds the shipped onnx-fp32 (checker, I/O, metadata, numerics on
the goldens at batch 1, 7 and 64), without touching the bundle.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from contracts import ENCODER_V1

VARIANTS = {
    "ort-opt": "ONNX fp32 + transformer optimizer, as is",
    "ort-opt-fused": "ONNX fp32 + transformer optimizer after 4 graph rewrites (attention fused)",
}


def optimize_plain(src: Path, dst: Path) -> dict[str, int]:
    """``optimize_model(path, model_type="bert", num_heads=12, hidden_size=384)`` and nothing else."""
    import onnxruntime as ort
    from onnxruntime.transformers.optimizer import optimize_model

    ort.set_default_logger_severity(3)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "failed in shape inference"
        model = optimize_model(str(src), model_type="bert", num_heads=12, hidden_size=384)
    model.save_model_to_file(str(dst))
    return {k: v for k, v in model.get_fused_operator_statistics().items() if v}


def optimize_fused(src: Path, dst: Path) -> dict[str, int]:
    import onnxruntime as ort

    from benchmarks.quant_search import fuse_bert

    ort.set_default_logger_severity(3)
    with contextlib.redirect_stdout(io.StringIO()):
        return fuse_bert(src, dst)


def build_variants(bundle: Path, workdir: Path) -> dict[str, dict[str, object]]:
    """Name → {path, fused operators, problems}; the contract checks of verify-contract on each."""
    src = bundle / ENCODER_V1.artifact("onnx-fp32").filename
    built = {}
    for name, build in (("ort-opt", optimize_plain), ("ort-opt-fused", optimize_fused)):
        dst = workdir / f"encoder_v1.fp32.{name}.onnx"
        fused = build(src, dst)
        built[name] = {"path": dst, "fused": fused, **contract_checks(bundle, dst)}
    return built


def contract_checks(bundle: Path, path: Path) -> dict[str, object]:
    """The checks verify-contract runs on onnx-fp32, run on ``path`` in its place."""
    from golden.store import read_golden
    from verify.backends.runners import OnnxRunner
    from verify.bundle import open_bundle
    from verify.checks.integrity import bundle_facts
    from verify.checks.numerics import check_numerics
    from verify.checks.onnx_structure import check_onnx

    facts, _ = bundle_facts(open_bundle(bundle))
    golden = read_golden(bundle / "golden")
    artifact = ENCODER_V1.artifact("onnx-fp32")
    results = check_onnx(artifact.key, ENCODER_V1, path, facts)
    results += check_numerics(artifact, ENCODER_V1, golden, OnnxRunner(ENCODER_V1, path))
    return {
        "checks_passed": sum(not r.failed for r in results),
        "checks_failed": [f"{r.name}: {r.message}" for r in results if r.failed],
        "checks": {r.name: r.message for r in results},
    }
