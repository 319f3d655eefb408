"""Graph signatures: what a program computes apart from its weights, one line per op.

A line holds the op type, every non-weight attribute (modes, epsilons, axes, dtypes, small
constants such as shapes and scales), where each input comes from, and the output dtypes and
shapes. Weights appear as dtype and shape only, so the signature is small and names the op that
changed. It is recorded in the bundle at build (``graph/<artifact key>.json``) and derived again
from the artifact at verify: a GELU switched to its tanh approximation, a changed epsilon or a
rewired input fails the graph check, however small its numerical effect.

Core ML programs are read from the Model proto without loading weights; ONNX models from the
graph proto. Op and value names are left out of the lines (a rename computes the same thing) but
kept to name the op in messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Constants with at most this many elements are attributes (axes, shapes, epsilons, scalar
#: scales and zero points); larger ones are weights, given by dtype and shape only.
ATTRIBUTE_ELEMENTS = 16
SIGNATURE_FORMAT = 1
GRAPH_DIR = "graph"


@dataclass(frozen=True)
class OpLine:
    name: str  # the op's name or first output, for messages
    line: str  # what is compared


def signature_path(key: str) -> str:
    """Where a bundle keeps the signature recorded for artifact ``key``."""
    return f"{GRAPH_DIR}/{key}.json"


def artifact_signature(path: Path) -> list[OpLine]:
    return coreml_signature(path) if path.is_dir() else onnx_signature(path)


def write_signature(target: Path, ops: list[OpLine]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {"signature_format": SIGNATURE_FORMAT, "ops": [[op.name, op.line] for op in ops]}
    target.write_text(json.dumps(payload, indent=0, ensure_ascii=False) + "\n")


def parse_signature(payload: Any) -> list[OpLine]:
    if not isinstance(payload, dict) or payload.get("signature_format") != SIGNATURE_FORMAT:
        raise ValueError(f"not a graph signature of format {SIGNATURE_FORMAT}")
    ops = payload.get("ops")
    if not isinstance(ops, list) or not all(
        isinstance(op, list) and len(op) == 2 and all(isinstance(s, str) for s in op) for op in ops
    ):
        raise ValueError("graph signature 'ops' is not a list of [name, line] pairs")
    return [OpLine(name, line) for name, line in ops]


def first_difference(recorded: list[OpLine], actual: list[OpLine]) -> str | None:
    """A one-line description of the first op that differs, or None when none does."""
    for index, (old, new) in enumerate(zip(recorded, actual, strict=False)):  # lengths may differ
        if old.line != new.line:
            changed = sum(a.line != b.line for a, b in zip(recorded, actual, strict=False))
            return (
                f"op {index} ({new.name}) differs from the build: was `{_clip(old.line)}`, "
                f"is `{_clip(new.line)}` ({changed} op(s) differ)"
            )
    if len(recorded) != len(actual):
        index = min(len(recorded), len(actual))
        extra = (actual if len(actual) > len(recorded) else recorded)[index]
        verb = "added" if len(actual) > len(recorded) else "removed"
        count = abs(len(actual) - len(recorded))
        return f"{count} op(s) {verb} from op {index} on ({extra.name}: `{_clip(extra.line)}`)"
    return None


def _clip(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _values(array: np.ndarray) -> str:
    if array.size > ATTRIBUTE_ELEMENTS:
        return f"W{array.dtype}{list(array.shape)}"
    return f"{array.dtype}{list(array.shape)}={array.ravel().tolist()}"


# -- Core ML --------------------------------------------------------------------------------------

_MIL_DTYPES = {
    "FLOAT16": np.float16, "FLOAT32": np.float32, "FLOAT64": np.float64, "INT8": np.int8,
    "UINT8": np.uint8, "INT16": np.int16, "UINT16": np.uint16, "INT32": np.int32, "INT64": np.int64,
    "BOOL": np.bool_,
}  # fmt: skip


def _mil_type(value_type: Any) -> str:
    from coremltools.proto import MIL_pb2

    kind = value_type.WhichOneof("type")
    if kind == "tensorType":
        tensor = value_type.tensorType
        dims = [
            str(d.constant.size) if d.WhichOneof("dimension") == "constant" else "?"
            for d in tensor.dimensions
        ]
        return f"{MIL_pb2.DataType.Name(tensor.dataType).lower()}[{','.join(dims)}]"
    if kind == "listType":
        return f"list<{_mil_type(value_type.listType.type)}>"
    return kind or "?"


def _mil_value(value: Any) -> str:
    """An immediate value by content when small; a blob (weights) by type only."""
    from coremltools.proto import MIL_pb2

    if value.WhichOneof("value") != "immediateValue":
        return f"W{_mil_type(value.type)}"
    immediate = value.immediateValue
    if immediate.WhichOneof("value") == "tuple":
        return "(" + ",".join(_mil_value(v) for v in immediate.tuple.values) + ")"
    tensor = immediate.tensor
    field = tensor.WhichOneof("value")
    if field is None:
        return f"{_mil_type(value.type)}=[]"
    if field == "strings":
        return repr(list(tensor.strings.values))
    dtype_name = MIL_pb2.DataType.Name(value.type.tensorType.dataType)
    array: np.ndarray
    if field == "bytes":
        array = np.frombuffer(tensor.bytes.values, dtype=_MIL_DTYPES.get(dtype_name, np.uint8))
    else:
        array = np.asarray(list(getattr(tensor, field).values))
        if dtype_name in _MIL_DTYPES:
            array = array.astype(_MIL_DTYPES[dtype_name])
    dims = [d.constant.size for d in value.type.tensorType.dimensions]
    if array.size == int(np.prod(dims)):
        array = array.reshape(dims)
    return _values(array)


def coreml_signature(path: Path) -> list[OpLine]:
    """Signature of an ML Program's main function, read from model.mlmodel (weights not loaded)."""
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.ParseFromString((path / "Data" / "com.apple.CoreML" / "model.mlmodel").read_bytes())
    if spec.WhichOneof("Type") != "mlProgram":
        raise ValueError(f"not an ML Program (found {spec.WhichOneof('Type')})")
    function = spec.mlProgram.functions["main"]
    block = function.block_specializations[function.opset]
    sources: dict[str, str] = {f"{i.name}": f"in:{i.name}" for i in function.inputs}
    lines = [OpLine("opset", f"opset {function.opset}")]
    for op in block.operations:
        if op.type == "const":  # folded into the ops that read it
            sources[op.outputs[0].name] = _mil_value(op.attributes["val"])
            continue
        index = len(lines)
        arguments = []
        for name in sorted(op.inputs):
            bindings = [
                sources.get(b.name, f"?{b.name}")
                if b.WhichOneof("binding") == "name"
                else _mil_value(b.value)
                for b in op.inputs[name].arguments
            ]
            joined = bindings[0] if len(bindings) == 1 else "(" + ",".join(bindings) + ")"
            arguments.append(f"{name}={joined}")
        attributes = [f"@{k}={_mil_value(op.attributes[k])}" for k in sorted(op.attributes) if k != "name"]
        outputs = []
        for position, output in enumerate(op.outputs):
            sources[output.name] = f"%{index}.{position}"
            outputs.append(_mil_type(output.type))
        if op.blocks:
            attributes.append(f"@blocks={len(op.blocks)}")
        line = f"{op.type}({', '.join(arguments + attributes)}) -> {', '.join(outputs)}"
        lines.append(OpLine(op.outputs[0].name if op.outputs else op.type, line))
    returned = [sources.get(name, f"?{name}") for name in block.outputs]
    lines.append(OpLine("outputs", f"return {', '.join(returned)}"))
    return lines


# -- ONNX -----------------------------------------------------------------------------------------


def _onnx_attribute(attribute: Any) -> str:
    from onnx import helper, numpy_helper

    value = helper.get_attribute_value(attribute)
    if attribute.type == attribute.TENSOR:
        return _values(numpy_helper.to_array(value))
    if attribute.type in (attribute.GRAPH, attribute.GRAPHS):
        return "graph"
    if isinstance(value, bytes):
        return repr(value.decode("utf-8", "replace"))
    if isinstance(value, list):
        return repr([v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value])
    return repr(value)


def onnx_signature(path: Path) -> list[OpLine]:
    """Signature of an ONNX graph: nodes in order, Constant nodes and initializers folded in."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    sources: dict[str, str] = {"": "-"}
    for initializer in graph.initializer:
        dims = list(initializer.dims)
        if int(np.prod(dims)) > ATTRIBUTE_ELEMENTS:
            dtype = onnx.helper.tensor_dtype_to_np_dtype(initializer.data_type)
            sources[initializer.name] = f"W{dtype}{dims}"
        else:
            sources[initializer.name] = _values(numpy_helper.to_array(initializer))
    for graph_input in graph.input:
        sources.setdefault(graph_input.name, f"in:{graph_input.name}")
    opsets = sorted(f"{o.domain or 'ai.onnx'}:{o.version}" for o in model.opset_import)
    lines = [OpLine("opset", f"opset {' '.join(opsets)}")]
    for node in graph.node:
        if node.op_type == "Constant" and not node.domain and len(node.attribute) == 1:
            sources[node.output[0]] = _onnx_attribute(node.attribute[0])
            continue
        index = len(lines)
        arguments = [sources.get(name, f"?{name}") for name in node.input]
        attributes = [f"@{a.name}={_onnx_attribute(a)}" for a in sorted(node.attribute, key=lambda a: a.name)]
        for position, output in enumerate(node.output):
            sources[output] = f"%{index}.{position}"
        op = f"{node.domain}.{node.op_type}" if node.domain else node.op_type
        lines.append(OpLine(node.name or node.output[0], f"{op}({', '.join(arguments + attributes)})"))
    returned = [sources.get(o.name, f"?{o.name}") for o in graph.output]
    lines.append(OpLine("outputs", f"return {', '.join(returned)}"))
    return lines
