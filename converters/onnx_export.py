"""PyTorch reference → ONNX, with the contract's names and dynamic batch/sequence."""

from __future__ import annotations

from pathlib import Path

import torch

from contracts import Contract

OPSET = 18


def export_onnx(
    module: torch.nn.Module,
    contract: Contract,
    example_inputs: tuple[torch.Tensor, ...],
    path: Path,
    metadata: dict[str, str],
) -> None:
    """Export with the TorchScript exporter (the dynamo exporter renames an output
    called ``embedding``), then stamp metadata and check the graph fully."""
    import onnx

    if contract.onnx.min_opset > OPSET:
        raise ValueError(f"opset {OPSET} is below the contract's {contract.onnx.min_opset}")
    dynamic_axes = {
        spec.name: {axis: dim.name for axis, dim in enumerate(spec.shape) if not dim.is_fixed}
        for spec in (*contract.inputs, *contract.outputs)
    }
    with torch.no_grad():
        torch.onnx.export(
            module.eval(),
            example_inputs,
            str(path),
            input_names=[spec.name for spec in contract.inputs],
            output_names=[spec.name for spec in contract.outputs],
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False,
        )
    model = onnx.load(str(path))
    _name_dims(model, contract)
    model.doc_string = contract.description
    model.model_version = int(contract.version.split(".")[0])
    onnx.helper.set_model_props(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def _name_dims(model, contract: Contract) -> None:
    """Fixed output dims as numbers and dynamic ones by their contract name; the exporter
    leaves symbolic names such as 'Divembedding_dim_1' behind."""
    specs, values = (*contract.inputs, *contract.outputs), (*model.graph.input, *model.graph.output)
    for spec, value in zip(specs, values, strict=True):
        for axis, dim in enumerate(spec.shape):
            proto = value.type.tensor_type.shape.dim[axis]
            if dim.is_fixed:
                proto.dim_value = dim.lower
            else:
                proto.dim_param = dim.name
