"""Issue 13, classes 1 and 2: edits smaller than a variant's own error, caught by self-goldens;
graph attributes, caught by the graph signature. Every mutant here also rehashes the manifest's
content hashes, as a careful rebuild would, so the content check cannot be what catches it."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import onnx
import pytest

from contracts import ENCODER_V1, PERSONALITY_V1
from tests.helpers import failing_checks, rehash_manifest, run_verify
from verify.graph import OpLine, artifact_signature, first_difference, signature_path
from verify.self_golden import (
    SelfGolden,
    check_self_golden,
    environment_id,
    read_self_golden,
    self_golden_path,
)
from verify.selftest.mutants import (
    edit_coreml_blob,
    edit_coreml_spec,
    edit_onnx_initializer,
    gelu_tanh,
    perturb_onnx_initializer,
    scale_onnx_initializers,
    scaled,
)

pytestmark = pytest.mark.slow


def _failure_message(report) -> str:
    checks = json.loads(report.read_text())["bundles"][0]["checks"]
    return next(c["message"] for c in checks if c["status"] == "fail")


QUERY_ZERO_POINT = "layer.0/attention/self/query/MatMul/int8/weight_zero_point"
HEAD_GAMMA = "head_layer_norm_weight_to_fp16"


def _bump_first(values: np.ndarray) -> np.ndarray:
    values.flat[0] += 1
    return values


SMALL_EDITS = {
    "onnx-int8 encoder weight scales x(1 + 1e-3)": (
        "encoder_v1",
        "onnx-int8",
        lambda b: scale_onnx_initializers(b / "encoder_v1.int8.onnx", "weight_scale", 1 + 1e-3),
    ),
    "onnx-int8 encoder zero point + 1": (
        "encoder_v1",
        "onnx-int8",
        lambda b: edit_onnx_initializer(b / "encoder_v1.int8.onnx", QUERY_ZERO_POINT, _bump_first),
    ),
    "onnx-int8 PersonalityModel head x(1 ± 1e-3)": (
        "personality_v1",
        "onnx-int8",
        lambda b: perturb_onnx_initializer(b / "personality_v1.int8.onnx", "output_bias", 1e-3),
    ),
    "coreml-fp16 LayerNorm gamma x(1 ± 1e-3)": (
        "encoder_v1",
        "coreml-fp16",
        lambda b: edit_coreml_blob(b / "encoder_v1.fp16.mlpackage", HEAD_GAMMA, scaled(1e-3)),
    ),
}


@pytest.mark.parametrize("edit", list(SMALL_EDITS))
def test_edits_inside_the_fp32_bounds_fail_the_self_goldens(copy_bundle, capsys, tmp_path, edit):
    name, key, apply = SMALL_EDITS[edit]
    bundle = copy_bundle(name)
    apply(bundle)
    rehash_manifest(bundle, contents=True)
    report = tmp_path / "r.json"
    code, out, _ = run_verify(capsys, bundle, "--only", key, "--json", report)
    failures = failing_checks(report)
    assert code == 1, out[-2000:]
    assert failures and all(f.startswith(f"{key}/self[") for f in failures), failures


def _self_golden(key: str = "onnx-int8") -> tuple:
    artifact = PERSONALITY_V1.artifact(key)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(8, 325)).astype(np.float32)
    return artifact, SelfGolden(np.arange(8), "onnxruntime test", {"logits": logits})


def _outcome(artifact, recorded, logits, environment: str) -> str:
    recorded = replace(recorded, environment=environment)
    batch_one = {"logits": np.concatenate([logits, np.zeros((72, 325), np.float32)])}
    [result] = check_self_golden(artifact, PERSONALITY_V1, recorded, batch_one, recorded.backend)
    return result.status


def test_self_goldens_are_exact_where_recorded_and_bounded_by_noise_elsewhere():
    artifact, recorded = _self_golden()
    here, elsewhere = environment_id(recorded.backend), "another CPU"
    logits = recorded.tensors["logits"]
    limit = artifact.self_tolerance_for("logits").bounds[0].limit  # 1e-4 for onnx-int8
    assert _outcome(artifact, recorded, logits, here) == "pass"
    assert _outcome(artifact, recorded, logits + limit / 2, here) == "fail"
    assert _outcome(artifact, recorded, logits + limit / 2, elsewhere) == "pass"
    assert _outcome(artifact, recorded, logits + limit * 2, elsewhere) == "fail"


def test_self_goldens_of_another_backend_are_not_judged():
    artifact, recorded = _self_golden()
    [result] = check_self_golden(artifact, PERSONALITY_V1, recorded, {}, "Core ML runtime (CPU_ONLY)")
    assert result.status == "skip" and "recorded with onnxruntime test" in result.message


def test_every_artifact_has_self_golden_bounds_for_every_output():
    for contract in (ENCODER_V1, PERSONALITY_V1):
        for artifact in contract.artifacts:
            for output in contract.outputs:
                [bound] = artifact.self_tolerance_for(output.name).bounds
                assert bound.measured is not None and bound.measured < bound.limit


def test_the_build_records_self_goldens_on_spread_rows(bundles):
    recorded = read_self_golden(bundles / "encoder_v1" / self_golden_path("onnx-int8"))
    assert len(recorded.rows) == ENCODER_V1.self_golden_rows == len(set(recorded.rows.tolist()))
    assert set(recorded.tensors) == {o.name for o in ENCODER_V1.outputs}
    assert recorded.environment == environment_id(recorded.backend)


def test_a_missing_self_golden_fails_and_says_rebuild(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    (bundle / self_golden_path("onnx-fp32")).unlink()
    rehash_manifest(bundle, contents=True)
    report = tmp_path / "r.json"
    code, _, _ = run_verify(capsys, bundle, "--only", "onnx-fp32", "--json", report)
    assert code == 1 and failing_checks(report) == {"onnx-fp32/self"}
    message = _failure_message(report)
    assert "rebuild the bundle" in message


# -- class 2: graph signatures ---------------------------------------------------------------------


def test_coreml_gelu_switched_to_tanh_fails_the_graph_check_and_names_the_op(copy_bundle, capsys, tmp_path):
    """The shift (4e-4 max abs) is inside the fp16 bound; the mode is not a weight."""
    bundle = copy_bundle("encoder_v1")
    edit_coreml_spec(bundle / "encoder_v1.fp16.mlpackage", gelu_tanh)
    rehash_manifest(bundle, contents=True)
    report = tmp_path / "r.json"
    code, out, _ = run_verify(capsys, bundle, "--only", "coreml-fp16", "--no-numerics", "--json", report)
    assert code == 1 and failing_checks(report) == {"coreml-fp16/graph"}, out[-2000:]
    message = _failure_message(report)
    assert "gelu(" in message and "TANH_APPROXIMATION" in message and "6 op(s) differ" in message


def test_onnx_layer_norm_epsilon_changed_fails_the_graph_check(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    path = bundle / "personality_v1.fp16.onnx"
    model = onnx.load(str(path))
    node = next(n for n in model.graph.node if n.op_type == "LayerNormalization")
    next(a for a in node.attribute if a.name == "epsilon").f = 1e-3
    onnx.save(model, str(path))
    rehash_manifest(bundle, contents=True)
    report = tmp_path / "r.json"
    code, _, _ = run_verify(capsys, bundle, "--only", "onnx-fp16", "--no-numerics", "--json", report)
    assert code == 1 and failing_checks(report) == {"onnx-fp16/graph"}
    message = _failure_message(report)
    assert "LayerNormalization(" in message and "@epsilon=0.001" in message


def test_signatures_leave_weights_out_and_keep_small_constants(bundles):
    ops = artifact_signature(bundles / "personality_v1" / "personality_v1.int8.mlpackage")
    text = "\n".join(op.line for op in ops)
    assert "Wint8[" in text and "Wfloat16[" in text  # weights by dtype and shape only
    assert "epsilon=float16[]=" in text  # a layer_norm epsilon by value
    recorded = json.loads((bundles / "personality_v1" / signature_path("coreml-int8")).read_text())
    assert [line for _, line in recorded["ops"]] == [op.line for op in ops]


def test_first_difference_reports_added_and_removed_ops():
    ops = [OpLine("a", "add(x=in:x)"), OpLine("b", "relu(x=%1.0)")]
    assert first_difference(ops, ops) is None
    assert "1 op(s) added from op 2 on (c" in first_difference(ops, [*ops, OpLine("c", "exp(x=%2.0)")])
    assert "1 op(s) removed from op 1 on (b" in first_difference(ops, ops[:1])
    changed = first_difference(ops, [ops[0], OpLine("b", "tanh(x=%1.0)")])
    assert changed.startswith("op 1 (b) differs from the build: was `relu(x=%1.0)`, is `tanh(x=%1.0)`")


# -- class 4: the fingerprint from the content ---------------------------------------------------


def test_the_fingerprint_is_recomputed_from_the_fp32_weights(copy_bundle, capsys, tmp_path):
    """Projection weights changed by 1e-3 with every hash refreshed and the fingerprint left as it
    was: the encoder bundle alone fails, because the fingerprint is recomputed from its fp32 ONNX."""
    bundle = copy_bundle("encoder_v1")
    perturb_onnx_initializer(bundle / "encoder_v1.fp32.onnx", "head.projection.weight", 1e-3)
    rehash_manifest(bundle, contents=True)
    report = tmp_path / "r.json"
    code, _, _ = run_verify(capsys, bundle, "--no-numerics", "--json", report)
    assert code == 1 and failing_checks(report) == {"encoder-fingerprint"}
    assert "encoder_v1.fp32.onnx give" in _failure_message(report)


def test_the_fingerprint_ignores_how_an_exporter_lays_out_weights():
    from contracts.hashing import weights_digest

    weight = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert weights_digest([weight, np.ones(5)]) == weights_digest([np.ones(5), weight.T.copy()])
    assert weights_digest([weight]) != weights_digest([weight * (1 + 1e-7)])
    assert weights_digest([weight, np.float32(2.0)]) == weights_digest([weight])  # scalars are not weights


def _gamma_times_1e4_coreml(bundle):
    edit_coreml_blob(bundle / "encoder_v1.fp16.mlpackage", HEAD_GAMMA, lambda values: values * 1e4)


def _gamma_infinite_onnx(bundle):
    """onnxruntime's optimised fp16 LayerNorm absorbs x 1e4 (finite but wrong outputs); inf it does not."""
    edit_onnx_initializer(
        bundle / "encoder_v1.fp16.onnx", "head.layer_norm.weight", lambda v: v * np.float16(np.inf)
    )


@pytest.mark.parametrize(
    "key, edit, op_type, op_name",
    [
        ("coreml-fp16", _gamma_times_1e4_coreml, "layer_norm", "input_"),
        ("onnx-fp16", _gamma_infinite_onnx, "LayerNormalization", "/head/layer_norm/"),
    ],
    ids=["coreml", "onnx"],
)
def test_fp16_overflow_names_the_first_op_that_made_inf(
    copy_bundle, capsys, tmp_path, key, edit, op_type, op_name
):
    """The head LayerNorm's gamma x 1e4 still fits fp16, but its outputs overflow: the numerics
    failure names that LayerNorm op, found by running the first failing golden row op by op."""
    bundle = copy_bundle("encoder_v1")
    edit(bundle)
    rehash_manifest(bundle, contents=True)
    report = tmp_path / "r.json"
    code, out, _ = run_verify(capsys, bundle, "--only", key, "--json", report)
    assert code == 1, out[-2000:]
    checks = {c["name"]: c for b in json.loads(report.read_text())["bundles"] for c in b["checks"]}
    embedding = checks[f"{key}/numerics[embedding]"]
    assert "NaN or Inf" in embedding["message"] and f"first non-finite op: {op_type}" in embedding["message"]
    found_type, found_name = embedding["details"]["first_nonfinite_op"]
    assert found_type == op_type and found_name.startswith(op_name), (found_type, found_name)
    assert checks[f"{key}/numerics[sentence_embedding]"]["status"] == "pass"  # before the head
    explained = checks[f"{key}/explain"]  # the failing numerics are explained op by op
    assert explained["status"] == "fail" and "first NaN/Inf" in explained["message"], explained["message"]
    assert explained["details"]["first_nonfinite"]["op_type"] == op_type


def test_a_finite_program_names_no_op(bundles):
    from golden.store import read_golden
    from verify.backends.mil import MILProgramExecutor
    from verify.backends.traced import first_nonfinite_op

    golden = read_golden(bundles / "encoder_v1" / "golden")
    from verify.backends.onnx_trace import OnnxTrace

    executor = MILProgramExecutor(bundles / "encoder_v1" / "encoder_v1.fp16.mlpackage")
    inputs = golden.batch([spec.name for spec in ENCODER_V1.inputs], np.arange(2))
    assert first_nonfinite_op(executor, inputs) is None
    assert first_nonfinite_op(OnnxTrace(bundles / "encoder_v1" / "encoder_v1.fp16.onnx"), inputs) is None


@pytest.mark.slow
def test_an_int8_encoder_whose_rows_depend_on_their_batch_mates_fails(copy_bundle, capsys, tmp_path):
    """Issue 17: the earlier one-pass-except-V recipe (per-tensor dynamic scales; only the value
    projections quantized twice) passes the goldens' numerics at every batch size, yet a row's
    embedding moves with its batch-mates (min cosine ~0.9975 against batch 1): batch-invariance
    catches what the numerics bounds allow."""
    from converters.onnx_quantize import quantize_encoder_int8

    bundle = copy_bundle("encoder_v1")
    quantize_encoder_int8(bundle / "encoder_v1.fp32.onnx", bundle / "encoder_v1.int8.onnx", two_pass="values")
    rehash_manifest(bundle, contents=True)
    report = tmp_path / "report.json"
    code, out, _ = run_verify(capsys, bundle, "--only", "onnx-int8", "--json", report)
    failures = failing_checks(report)
    assert code == 1 and "onnx-int8/batch-invariance" in failures, failures
    assert not {"onnx-int8/numerics[embedding]", "onnx-int8/numerics[sentence_embedding]"} & failures
    assert "min_cosine 0.99" in out
