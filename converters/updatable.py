"""The updatable Core ML PersonalityModel: ML Program backbone → NeuralNetwork head, as a Pipeline.

ML Programs cannot be updatable; Core ML trains only NeuralNetwork ``innerProduct`` and
``convolution`` layers. The head is one fp32 ``innerProduct`` (W = ``projection.weight``,
b = ``output_bias``) and a sigmoid, with the loss and optimizer the contract declares.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch

from contracts import Contract, TensorSpec
from contracts.schema import OnDeviceTraining
from converters.coreml import convert_to_mlprogram
from reference.personality import PersonalityModel

HEAD_SIGMOID_LAYER = "sigmoid"
LOSS_LAYER = "loss"


class _Backbone(torch.nn.Module):
    def __init__(self, model: PersonalityModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.model.features(embedding)


def _array(spec: TensorSpec):  # -> datatypes.Array, shaped at the lower bounds
    from coremltools.models import datatypes

    return datatypes.Array(*(dim.lower for dim in spec.shape))


def _set_float32(feature, spec: TensorSpec) -> None:
    """FLOAT32 with the contract's ranges (the NeuralNetwork builder defaults to DOUBLE)."""
    from coremltools.proto import FeatureTypes_pb2 as ft

    array = feature.type.multiArrayType
    array.dataType = ft.ArrayFeatureType.FLOAT32
    del array.shape[:]
    array.shape.extend(dim.lower for dim in spec.shape)
    array.shapeRange.ClearField("sizeRanges")
    for dim in spec.shape:
        array.shapeRange.sizeRanges.add(lowerBound=dim.lower, upperBound=dim.upper)


def build_head(model: PersonalityModel, contract: Contract):  # -> Model_pb2.Model
    """The updatable NeuralNetwork head: features → logits → probabilities."""
    from coremltools.models.neural_network import NeuralNetworkBuilder, SgdParams

    training = _training(contract)
    logits = contract.output("logits")
    weights = {p.field: p for p in training.parameters}
    state = {name: t.detach().numpy().astype(np.float32) for name, t in model.state_dict().items()}
    weight, bias = state[weights["weights"].torch_name], state[weights["bias"].torch_name]
    layer = weights["weights"].layer
    builder = NeuralNetworkBuilder(
        [(training.features.name, _array(training.features))],
        [(logits.name, None), (training.probabilities.name, None)],
        disable_rank5_shape_mapping=True,
    )
    builder.add_inner_product(
        layer, weight, bias, weight.shape[1], weight.shape[0], True, training.features.name, logits.name
    )
    builder.add_activation(HEAD_SIGMOID_LAYER, "SIGMOID", logits.name, training.probabilities.name)
    builder.make_updatable([layer])
    if training.loss != "mean_squared_error" or training.optimizer != "sgd":
        raise ValueError(f"unsupported on-device training {training.loss} + {training.optimizer}")
    probabilities = (training.probabilities.name, _array(training.probabilities))
    with contextlib.redirect_stdout(io.StringIO()):  # coremltools prints the target it adds
        builder.set_mean_squared_error_loss(LOSS_LAYER, probabilities)
    sgd = SgdParams(momentum=0.0)
    sgd.set_lr(training.learning_rate, *training.learning_rate_range)
    sgd.set_batch(training.mini_batch_size, list(training.mini_batch_sizes))
    builder.set_sgd_optimizer(sgd)
    builder.set_epochs(training.epochs, list(training.epoch_choices))
    builder.nn_spec.updateParams.shuffle.defaultValue = training.shuffle
    spec = builder.spec
    described = spec.description
    _set_float32(described.input[0], training.features)
    _set_float32(described.trainingInput[0], training.features)
    for feature, tensor in zip(described.output, (logits, training.probabilities), strict=True):
        _set_float32(feature, tensor)
    return spec


def _training(contract: Contract) -> OnDeviceTraining:
    if contract.training is None:
        raise ValueError(f"contract {contract.name} declares no on-device training")
    return contract.training


def build_updatable_pipeline(
    model: PersonalityModel, contract: Contract, example: tuple[torch.Tensor, ...], metadata: dict[str, str]
):  # -> ct.models.MLModel
    """The fp32 ML Program backbone and the updatable head, joined and marked updatable."""
    import coremltools as ct

    training = _training(contract)
    backbone = convert_to_mlprogram(
        _Backbone(model), contract, example, "fp32", {}, outputs=(training.features,)
    )
    head = ct.models.MLModel(build_head(model, contract), skip_model_load=True)
    pipeline = ct.utils.make_pipeline(backbone, head)
    spec = pipeline.get_spec()
    last = spec.pipeline.models[-1]
    if not last.isUpdatable or any(m.isUpdatable for m in spec.pipeline.models[:-1]):
        raise ValueError("only the last model of the pipeline may be updatable")
    spec.isUpdatable = True
    del spec.description.trainingInput[:]
    spec.description.trainingInput.extend(spec.description.input)
    spec.description.trainingInput.extend(
        t for t in last.description.trainingInput if t.name == training.target
    )
    spec.description.metadata.shortDescription = f"{contract.description} (updatable head)"
    spec.description.metadata.versionString = contract.version
    spec.description.metadata.userDefined.update(metadata)
    return ct.models.MLModel(spec, weights_dir=pipeline.weights_dir, skip_model_load=True)
