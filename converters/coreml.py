"""PyTorch reference → Core ML ML Program (.mlpackage)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from contracts import ArtifactSpec, Contract, TensorSpec

_PRECISIONS = {"fp32": "FLOAT32", "fp16": "FLOAT16"}


def _input_type(spec: TensorSpec):  # -> ct.TensorType
    import coremltools as ct

    dtype = np.dtype(spec.dtype).type
    enumerated = [i for i, dim in enumerate(spec.shape) if dim.choices]
    if enumerated:  # one enumerated dimension, every other fixed
        (axis,) = enumerated
        fixed = [dim.lower for dim in spec.shape]
        shapes = [tuple(fixed[:axis] + [size] + fixed[axis + 1 :]) for size in spec.shape[axis].choices]
        return ct.TensorType(
            name=spec.name, shape=ct.EnumeratedShapes(shapes=shapes, default=shapes[0]), dtype=dtype
        )
    shape = tuple(
        dim.lower if dim.is_fixed else ct.RangeDim(dim.lower, dim.upper, default=dim.lower)
        for dim in spec.shape
    )
    return ct.TensorType(name=spec.name, shape=shape, dtype=dtype)


class DerivedInputs(torch.nn.Module):
    """Takes the inputs an enumerated-shapes artifact is fed and computes the ones it derives
    (``input = source != pad_value``) before calling ``module`` with the contract's inputs."""

    def __init__(self, module: torch.nn.Module, contract: Contract, artifact: ArtifactSpec) -> None:
        super().__init__()
        enumerated = artifact.enumerated
        if enumerated is None:
            raise ValueError(f"{artifact.key} declares no enumerated inputs")
        self.module, self.pad_value = module, enumerated.pad_value
        fed = [spec.name for spec in contract.artifact_inputs(artifact)]
        derived = dict(enumerated.derived)
        # each contract input, in order: (False, its position among the fed inputs) or
        # (True, the position of the fed input it is derived from)
        self.plan = [
            (False, fed.index(spec.name)) if spec.name in fed else (True, fed.index(derived[spec.name]))
            for spec in contract.inputs
        ]

    def forward(self, *fed: torch.Tensor):
        inputs = [
            (fed[i] != self.pad_value).to(fed[i].dtype) if is_derived else fed[i]
            for is_derived, i in self.plan
        ]
        return self.module(*inputs)


def enumerated_example(
    contract: Contract, artifact: ArtifactSpec, example: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, ...]:
    """The first row of each fed input in ``example``, padded to the first enumerated size."""
    enumerated = artifact.enumerated
    assert enumerated is not None
    names = [spec.name for spec in contract.inputs]
    rows = []
    for spec in contract.artifact_inputs(artifact):
        row = example[names.index(spec.name)][: enumerated.batch]
        axis = [d.name for d in spec.shape].index(enumerated.dim)
        size = enumerated.size_for(row.shape[axis])
        if size is None:
            raise ValueError(f"example {spec.name} is longer than every enumerated size")
        padding = [0, 0] * (row.ndim - 1 - axis) + [0, size - row.shape[axis]]
        rows.append(torch.nn.functional.pad(row, padding, value=enumerated.pad_value))
    return tuple(rows)


def convert_to_mlprogram(
    module: torch.nn.Module,
    contract: Contract,
    example_inputs: tuple[torch.Tensor, ...],
    precision: str,
    metadata: dict[str, str],
    outputs: tuple[TensorSpec, ...] | None = None,
):  # -> ct.models.MLModel
    """Trace ``module`` and convert it with the contract's names, ranges and target.

    ``outputs`` replaces the contract's outputs (the updatable model's backbone ends in features).
    """
    import coremltools as ct

    if precision not in _PRECISIONS:
        raise ValueError(f"Core ML precision {precision!r} is not one of {sorted(_PRECISIONS)}")
    outputs = contract.outputs if outputs is None else outputs
    with torch.no_grad():
        traced = torch.jit.trace(module.eval(), example_inputs)
    model = ct.convert(
        traced,
        inputs=[_input_type(spec) for spec in contract.inputs],
        # float32 outputs whatever the compute precision: the contract's dtype, not fp16
        outputs=[ct.TensorType(name=spec.name, dtype=np.dtype(spec.dtype).type) for spec in outputs],
        convert_to="mlprogram",
        minimum_deployment_target=getattr(ct.target, contract.coreml.deployment_target),
        compute_precision=getattr(ct.precision, _PRECISIONS[precision]),
    )
    model.short_description = contract.description
    model.version = contract.version
    model.user_defined_metadata.update(metadata)
    for spec in (*contract.inputs, *outputs):
        if spec.description:
            if spec in contract.inputs:
                model.input_description[spec.name] = spec.description
            else:
                model.output_description[spec.name] = spec.description
    return model


def save_mlpackage(model, path: Path) -> None:
    model.save(str(path))


def _const_names_matching(model, arrays: tuple[np.ndarray, ...]) -> list[str]:
    """Names of the program's const ops holding exactly one of ``arrays``."""
    names = []
    for op in model._mil_program.functions["main"].find_ops(op_type="const"):
        value = op.outputs[0].val
        if isinstance(value, np.ndarray) and any(
            value.shape == a.shape and np.array_equal(value, a.astype(value.dtype)) for a in arrays
        ):
            names.append(op.name)
    return names


def quantize_weights_int8(model, keep_float: tuple[np.ndarray, ...] = ()):  # -> ct.models.MLModel
    """Linear-symmetric per-channel int8 weights (iOS 17 ``constexpr_affine_dequantize``).

    Weights equal to one of ``keep_float`` stay in float: the spec keeps the encoder's
    384→1536 projection out of 8-bit for stability.
    """
    from coremltools.optimize.coreml import (
        OpLinearQuantizerConfig,
        OptimizationConfig,
        linear_quantize_weights,
    )

    kept = _const_names_matching(model, keep_float)
    if len(kept) != len(keep_float):
        raise ValueError(f"found {len(kept)} of the {len(keep_float)} weights to keep in float")
    config = OptimizationConfig(
        global_config=OpLinearQuantizerConfig(
            mode="linear_symmetric", dtype="int8", granularity="per_channel"
        ),
        op_name_configs=dict.fromkeys(kept),
    )
    return linear_quantize_weights(model, config)
