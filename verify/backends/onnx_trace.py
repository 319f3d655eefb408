"""An ONNX model's intermediate tensors: every node's float outputs exposed as graph outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def first_nonfinite_node(path: Path, inputs: dict[str, np.ndarray]) -> tuple[str, str] | None:
    """(op type, node name) of the first node, in the graph's topological order, whose float
    output holds NaN or Inf on ``inputs``; None when every node stays finite. Graph optimisations
    are off, so each node runs as written."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {
        v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.output]
    }
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    names = [name for node in model.graph.node for name in node.output if types.get(name) in floats]
    declared = {o.name for o in model.graph.output}
    model.graph.output.extend(
        onnx.helper.make_tensor_value_info(name, types[name], None) for name in names if name not in declared
    )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    values: list[Any] = session.run(names, inputs)
    producer = {name: node for node in model.graph.node for name in node.output}
    for name, value in zip(names, values, strict=True):
        if not np.isfinite(value).all():
            return producer[name].op_type, producer[name].name or name
    return None
