"""Portable int8 models on the fast u8s8 kernels: the rewrite keeps every value, runs only where
it is exact, and the verifier's ``*/integer-kernels`` check sees any bit that moves."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from contracts import REGISTRY
from golden.store import read_golden
from verify.backends.integer_kernels import PORTABLE, cpu_flags, exact_u8s8, fast_model_bytes, sign_weights
from verify.backends.runners import OnnxRunner
from verify.checks.integer_kernels import check_integer_kernels
from verify.checks.numerics import run_goldens
from verify.result import FAIL, PASS, SKIP

EXACT_HERE = exact_u8s8()
needs_vnni = pytest.mark.skipif(not EXACT_HERE, reason="this CPU has no VNNI/AMX: u8s8 is not exact here")


def _gemm_model(codes: np.ndarray, extra_reader: bool = False) -> onnx.ModelProto:
    """Two MatMulIntegers sharing one portable weight (as the two-pass recipe does); with
    ``extra_reader`` an Identity also reads the weight."""
    rows, columns = codes.shape
    weight = numpy_helper.from_array((codes.astype(np.int16) + 128).astype(np.uint8), "w")
    zero = numpy_helper.from_array(np.full(columns, 128, np.uint8), "w_zero")
    a_zero = numpy_helper.from_array(np.array(128, np.uint8), "a_zero")
    nodes = [
        helper.make_node("MatMulInteger", ["a", "w", "a_zero", "w_zero"], ["y1"]),
        helper.make_node("MatMulInteger", ["b", "w", "a_zero", "w_zero"], ["y2"]),
    ]
    outputs = [helper.make_tensor_value_info(n, TensorProto.INT32, [None, columns]) for n in ("y1", "y2")]
    if extra_reader:
        nodes.append(helper.make_node("Identity", ["w"], ["w_copy"]))
        outputs.append(helper.make_tensor_value_info("w_copy", TensorProto.UINT8, [rows, columns]))
    inputs = [helper.make_tensor_value_info(n, TensorProto.UINT8, [None, rows]) for n in ("a", "b")]
    graph = helper.make_graph(nodes, "gemm", inputs, outputs, [weight, zero, a_zero])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def test_sign_weights_keeps_every_code_of_a_shared_weight():
    codes = np.random.default_rng(0).integers(-127, 128, (64, 48)).astype(np.int8)
    model = _gemm_model(codes)
    assert sign_weights(model) == 2  # two GEMMs, one weight
    initializers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert initializers["w"].dtype == np.int8 and np.array_equal(initializers["w"], codes)
    assert initializers["w_zero"].dtype == np.int8 and not initializers["w_zero"].any()
    onnx.checker.check_model(model, full_check=True)


def test_sign_weights_leaves_weights_that_something_else_reads():
    model = _gemm_model(np.zeros((8, 4), np.int8), extra_reader=True)
    assert sign_weights(model) == 0
    assert {i.name: i.data_type for i in model.graph.initializer}["w"] == TensorProto.UINT8


def test_sign_weights_leaves_other_zero_points():
    model = _gemm_model(np.zeros((8, 4), np.int8))
    zero = next(i for i in model.graph.initializer if i.name == "w_zero")
    zero.CopyFrom(numpy_helper.from_array(np.full(4, 127, np.uint8), "w_zero"))
    assert sign_weights(model) == 0


def test_the_rewrite_runs_only_where_u8s8_is_exact(tmp_path):
    path = tmp_path / "gemm.onnx"
    onnx.save(_gemm_model(np.ones((8, 4), np.int8)), str(path))
    assert fast_model_bytes(path, frozenset({"avx2", "fma"})) is None
    for flag in ("avx512_vnni", "avx_vnni"):
        assert fast_model_bytes(path, frozenset({"avx2", flag})) is not None
    assert exact_u8s8() == bool({"avx512_vnni", "avx_vnni"} & cpu_flags())


@needs_vnni
def test_signed_weights_give_the_same_bits_on_this_cpu():
    """Worst case for saturation: activations and codes at their extremes (u8s8 through
    vpmaddubsw would clip these pair sums at 32767)."""
    rng = np.random.default_rng(1)
    codes = rng.choice(np.array([-127, 127], np.int8), (384, 1536))
    model = _gemm_model(codes)
    feeds = {
        "a": rng.choice(np.array([0, 255], np.uint8), (64, 384)),
        "b": rng.integers(0, 256, (64, 384)).astype(np.uint8),
    }
    portable = _run(model, feeds)
    sign_weights(model)
    assert all(np.array_equal(p, s) for p, s in zip(portable, _run(model, feeds), strict=True))


def _personality_int8(bundles):
    contract = REGISTRY["personality_v1"]
    artifact = contract.artifact("onnx-int8")
    bundle = bundles / "personality_v1"
    return contract, artifact, bundle / artifact.filename, read_golden(bundle / "golden")


def test_integer_kernels_check_sees_one_moved_bit(bundles):
    contract, artifact, path, golden = _personality_int8(bundles)
    runner = OnnxRunner(contract, path)
    assert runner.signed_weights == EXACT_HERE
    runs = {64: run_goldens(runner, contract, golden, 64)}
    result = check_integer_kernels(artifact, contract, golden, runner, runs)
    assert result is not None
    if not EXACT_HERE:
        assert result.status == SKIP and "no VNNI/AMX" in result.message
        return
    assert result.status == PASS, result.message
    logits = runs[64]["logits"]
    logits[3, 7] = np.nextafter(logits[3, 7], np.inf, dtype=logits.dtype)  # one ulp, one value
    result = check_integer_kernels(artifact, contract, golden, runner, runs)
    assert result is not None and result.status == FAIL
    assert result.message.startswith("logits: 1 values differ")


def test_integer_kernels_check_is_silent_without_integer_gemms_and_skips_portable_runs(bundles):
    contract, artifact, path, golden = _personality_int8(bundles)
    portable = OnnxRunner(contract, path, integer_kernels=PORTABLE)
    assert not portable.signed_weights
    result = check_integer_kernels(artifact, contract, golden, portable, {})
    assert result is not None and result.status == SKIP
    fp32 = contract.artifact("onnx-fp32")
    runner = OnnxRunner(contract, path.parent / fp32.filename)
    assert not runner.signed_weights
    assert check_integer_kernels(fp32, contract, golden, runner, {}) is None
    with pytest.raises(ValueError, match="integer_kernels='fast'"):
        OnnxRunner(contract, path, integer_kernels="fast")
