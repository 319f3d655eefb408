"""ONNX structure: full checker, opset, input/output names, dtypes and dynamic dims."""

from __future__ import annotations

from pathlib import Path

from contracts import Contract, TensorSpec
from verify.checks.metadata import check_metadata
from verify.result import CheckResult, failed, verdict

_ELEM = {"float32": 1, "int32": 6, "float16": 10}
#: Integer GEMMs and the input index of their weights (B).
_INTEGER_GEMMS = {"MatMulInteger": 1, "DynamicQuantizeMatMul": 1, "MatMulIntegerToFloat": 1, "ConvInteger": 1}
_INT8 = 3  # onnx.TensorProto.INT8


def _value_problems(spec: TensorSpec, value) -> list[str]:
    tensor = value.type.tensor_type
    problems = []
    if tensor.elem_type != _ELEM[spec.dtype]:
        problems.append(f"{spec.name} elem_type {tensor.elem_type} != {spec.dtype}")
    dims = list(tensor.shape.dim)
    if len(dims) != len(spec.shape):
        return problems + [f"{spec.name} rank {len(dims)} != {len(spec.shape)}"]
    for axis, (dim, wanted) in enumerate(zip(dims, spec.shape, strict=True)):
        if wanted.is_fixed and dim.dim_value != wanted.lower:
            problems.append(
                f"{spec.name} dim {axis} is {dim.dim_value or dim.dim_param!r}, contract {wanted.lower}"
            )
        if not wanted.is_fixed and dim.dim_param != wanted.name:
            found = dim.dim_value or dim.dim_param
            problems.append(f"{spec.name} dim {axis} is {found!r}, contract dynamic {wanted.name!r}")
    return problems


def check_onnx_io(key: str, contract: Contract, model) -> CheckResult:
    problems = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < contract.onnx.min_opset:
        problems.append(f"opset {opset} < {contract.onnx.min_opset}")
    initializers = {i.name for i in model.graph.initializer}
    graph_inputs = [v for v in model.graph.input if v.name not in initializers]
    for kind, wanted, present in (
        ("inputs", contract.inputs, graph_inputs),
        ("outputs", contract.outputs, model.graph.output),
    ):
        names = [v.name for v in present]
        if names != [t.name for t in wanted]:
            problems.append(f"{kind} {names} != contract {[t.name for t in wanted]}")
            continue
        for spec, value in zip(wanted, present, strict=True):
            problems += _value_problems(spec, value)
    return verdict(f"{key}/io", problems, f"opset {opset}")


def check_portable_integer_math(key: str, model) -> CheckResult:
    """Integer GEMMs must not take int8 (signed) weights. onnxruntime runs uint8 x int8 (u8s8)
    through ``vpmaddubsw`` on x86 CPUs without VNNI (AVX2), whose int16 sums saturate, so the
    same file gives other embeddings on such a server (measured: encoder cos_min 0.956 instead
    of 0.997). uint8 weights with a zero point (u8u8) are exact on every CPU."""
    initializers = {i.name: i.data_type for i in model.graph.initializer}
    signed = [
        node.name or node.output[0]
        for node in model.graph.node
        if node.op_type in _INTEGER_GEMMS
        and len(node.input) > _INTEGER_GEMMS[node.op_type]
        and initializers.get(node.input[_INTEGER_GEMMS[node.op_type]]) == _INT8
    ]
    if not signed:
        return verdict(f"{key}/portable-int8", [], "no integer GEMM with signed weights")
    return failed(
        f"{key}/portable-int8",
        f"{len(signed)} integer GEMM(s) with int8 weights (first: {signed[0]}): u8s8 saturates on x86 CPUs "
        "without VNNI, so outputs depend on the CPU; store weights as uint8 with a zero point",
    )


def check_onnx(key: str, contract: Contract, path: Path, facts: dict[str, str]) -> list[CheckResult]:
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError and friends
        return [failed(f"{key}/checker", f"unreadable ONNX file: {type(exc).__name__}: {str(exc)[:200]}")]
    try:
        onnx.checker.check_model(model, full_check=True)
        checker = verdict(f"{key}/checker", [], "full_check passed")
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        checker = failed(f"{key}/checker", f"onnx.checker: {str(exc).splitlines()[0][:200]}")
    metadata = {p.key: p.value for p in model.metadata_props}
    return [
        checker,
        check_onnx_io(key, contract, model),
        check_portable_integer_math(key, model),
        check_metadata(f"{key}/metadata", contract, facts, metadata),
    ]
