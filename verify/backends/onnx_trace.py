"""An ONNX model's intermediate tensors: every node's float outputs exposed as graph outputs,
graph optimisations off, so each node runs as written."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from verify.backends.traced import GraphOp, Observer


class OnnxTrace:
    """An ONNX model run by onnxruntime with every float intermediate kept (a
    :class:`~verify.backends.traced.TracedProgram`)."""

    def __init__(self, path: Path) -> None:
        import onnx
        import onnxruntime as ort

        model = onnx.load(str(path))
        inferred = onnx.shape_inference.infer_shapes(model)
        types = {
            v.name: v.type.tensor_type.elem_type
            for v in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]
        }
        floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
        initializers = {i.name for i in model.graph.initializer}
        self._nodes = [node for node in model.graph.node if node.op_type != "Constant"]
        self._names = [name for node in self._nodes for name in node.output if types.get(name) in floats]
        declared = {o.name for o in model.graph.output}
        model.graph.output.extend(
            onnx.helper.make_tensor_value_info(name, types[name], None)
            for name in self._names
            if name not in declared
        )
        self._graph = [
            GraphOp(
                node.op_type,
                node.name or node.output[0],
                tuple(name for name in node.input if name and name not in initializers),
                tuple(node.output),
                tuple(name for name in node.input if name in initializers),
            )
            for node in self._nodes
        ]
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self._session = ort.InferenceSession(
            model.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )

    def graph(self) -> list[GraphOp]:
        return list(self._graph)

    def run(self, inputs: Mapping[str, Any], observe: Observer | None = None) -> dict[str, np.ndarray]:
        """Run once; ``observe`` then sees each node's float outputs in the graph's order."""
        values: dict[str, np.ndarray] = dict(
            zip(self._names, self._session.run(self._names, dict(inputs)), strict=True)
        )
        if observe is not None:
            for op in self._graph:
                observe(op.op_type, op.name, {name: values[name] for name in op.outputs if name in values})
        return values
