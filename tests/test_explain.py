"""Issue 15, item 1: ``--explain KEY`` names the op where an artifact's numerics break, by running
it and its format's fp32 artifact op by op on the worst golden rows."""

from __future__ import annotations

import json

import pytest

from tests.helpers import rehash_manifest, run_verify
from verify.explain import Explanation, OpDrift, dotted_modules, weight_stem
from verify.selftest.mutants import edit_coreml_blob, edit_onnx_initializer

BROKEN_MODULE = "encoder.layer.3.attention.self.query"


def _negate_coreml_query(bundle) -> None:
    edit_coreml_blob(
        bundle / "encoder_v1.int8.mlpackage",
        "bert_encoder_layer_3_attention_self_query_weight_to_fp16_quantized",
        lambda values: -values,
    )


def _negate_onnx_query(bundle) -> None:
    edit_onnx_initializer(
        bundle / "encoder_v1.int8.onnx",
        "/encoder/layer.3/attention/self/query/MatMul/int8/weight",
        lambda v: -v,
    )


def _checks(report) -> dict:
    return {c["name"]: c for b in json.loads(report.read_text())["bundles"] for c in b["checks"]}


@pytest.mark.slow
@pytest.mark.parametrize(
    "key, edit, op_type, flags",
    [
        ("coreml-int8", _negate_coreml_query, "linear", ("--only", "coreml-int8")),
        ("onnx-int8", _negate_onnx_query, "MatMul", ("--explain", "onnx-int8")),
    ],
    ids=["coreml-automatic", "onnx-explicit"],
)
def test_one_broken_layer_is_named(copy_bundle, capsys, tmp_path, key, edit, op_type, flags):
    """One layer's int8 weights negated: the numerics fail, and the explanation (automatic on a
    failing numerics check, or asked for) names that layer's op and torch module, with the error
    growth after it in the terminal and the HTML report."""
    bundle = copy_bundle("encoder_v1")
    edit(bundle)
    rehash_manifest(bundle, contents=True)
    report, page = tmp_path / "r.json", tmp_path / "r.html"
    code, out, _ = run_verify(capsys, bundle, *flags, "--json", report, "--html", page)
    assert code == 1, out[-3000:]
    checks = _checks(report)
    assert checks[f"{key}/numerics[embedding]"]["status"] == "fail"
    explained = checks[f"{key}/explain"]
    source = explained["details"]["source"]
    assert explained["status"] == "fail" and source is not None, explained["message"]
    assert source["op_type"] == op_type and source["module"].endswith(BROKEN_MODULE), source
    assert source["input_snr_db"] >= explained["details"]["floor_db"] > source["snr_db"]
    assert "failure source" in explained["message"] and BROKEN_MODULE in explained["message"]
    assert f"{key}/explain: error growth from the failure source" in out
    growth = explained["details"]["growth"]
    assert growth[0]["index"] == source["index"] and len(growth) > 3
    assert all(row["index"] > source["index"] for row in growth[1:])  # only what the source feeds
    assert f"{key}/explain error growth" in page.read_text()


def test_a_clean_artifact_has_no_failure_source(bundles, capsys, tmp_path):
    """A clean artifact: no failure source; the worst op is named with its SNR, above the floor."""
    report = tmp_path / "r.json"
    code, out, _ = run_verify(
        capsys, bundles / "personality_v1", "--explain", "coreml-int8", "--json", report
    )
    assert code == 0, out[-3000:]
    explained = _checks(report)["coreml-int8/explain"]
    details = explained["details"]
    assert explained["status"] == "pass" and details["source"] is None and details["first_nonfinite"] is None
    worst = details["worst"]
    assert worst["snr_db"] >= details["floor_db"] and f"SNR {worst['snr_db']:.1f} dB" in explained["message"]
    assert "coreml-int8/explain: error growth from the worst op" in out


@pytest.mark.slow
@pytest.mark.parametrize("key", ["coreml-fp16", "coreml-int8", "onnx-fp16", "onnx-int8"])
def test_clean_encoders_match_their_fp32_programs(bundles, key):
    """Op matching reaches nearly every float op of the clean encoder variants, and none of them
    falls below its op floor (the first rows; --explain picks the worst)."""
    from golden.store import read_golden
    from verify.bundle import open_bundle
    from verify.explain import explain_artifact

    bundle = open_bundle(bundles / "encoder_v1")
    explained = explain_artifact(
        bundle, bundle.registered.artifact(key), read_golden(bundle.root / "golden"), {}
    )
    details = explained.details
    assert explained.status == "pass" and details["source"] is None, explained.message
    assert details["compared_ops"] >= 0.9 * details["reference_ops"], details
    assert details["worst"]["module"], details["worst"]  # a torch module, not an empty name


def test_explain_refuses_bad_requests(bundles, capsys):
    code, _, err = run_verify(capsys, bundles / "encoder_v1", "--explain", "coreml-int4")
    assert code == 2 and "--explain: unknown artifact key 'coreml-int4'" in err and "Traceback" not in err
    code, _, err = run_verify(capsys, bundles / "encoder_v1", "--explain", "onnx-int8", "--no-numerics")
    assert code == 2 and "drop --no-numerics" in err


def test_an_fp32_artifact_is_the_reference(bundles, capsys, tmp_path):
    report = tmp_path / "r.json"
    run_verify(capsys, bundles / "personality_v1", "--explain", "onnx-fp32", "--json", report)
    explained = _checks(report)["onnx-fp32/explain"]
    assert explained["status"] == "skip" and "reference" in explained["message"]


def test_weight_names_give_torch_modules():
    assert weight_stem("bert_encoder_layer_0_attention_self_query_weight_to_fp16_quantized") == (
        "bert_encoder_layer_0_attention_self_query"
    )
    assert weight_stem("var_27_to_fp16") is None
    dotted = dotted_modules(["bert.encoder.layer.0.output.LayerNorm.weight", "onnx::MatMul_679"])
    assert dotted == {"bert_encoder_layer_0_output_LayerNorm": "bert.encoder.layer.0.output.LayerNorm"}


def _op(index: int, snr: float, inputs: float, trusted: bool = True) -> OpDrift:
    return OpDrift(index, "linear", f"op{index}", f"m{index}", snr, 0.1, inputs, trusted=trusted)


def test_the_source_is_the_first_op_below_the_floor_whose_inputs_are_above_it():
    report = Explanation("int8", "fp32", [0], floor_db=20.0)
    report.ops = [_op(0, 40, 200), _op(1, 15, 40, trusted=False), _op(2, 10, 40), _op(3, 5, 10)]
    assert report.source is not None and report.source.index == 2  # 1 was rewritten, 3 inherits
    assert report.worst is not None and report.worst.index == 3
    report.ops = [_op(0, 40, 200), _op(1, 30, 40)]
    assert report.source is None and report.worst is not None and report.worst.index == 1
