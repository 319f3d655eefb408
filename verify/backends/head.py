"""The updatable pipeline on Linux: backbone through the MIL executor, NeuralNetwork head in numpy.

Also replays Core ML's declared update (MSE on sigmoid outputs, SGD) in numpy, so the golden
personalization step is checked against what the artifact itself declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contracts import Contract
from verify.backends.runners import Runner

_HEAD_LAYERS = ("innerProduct", "activation")


class UnsupportedHeadLayer(ValueError):
    """A head layer this numpy evaluator does not implement."""


def weight_values(params) -> np.ndarray:
    """A WeightParams as float32; fp16 and raw bytes are decoded so that they can be compared."""
    if len(params.floatValue):
        return np.asarray(params.floatValue, dtype=np.float32)
    if params.float16Value:
        return np.frombuffer(params.float16Value, dtype=np.float16).astype(np.float32)
    return np.frombuffer(params.rawValue, dtype=np.float32) if params.rawValue else np.zeros(0, np.float32)


def inner_product(layer) -> tuple[np.ndarray, np.ndarray]:
    params = layer.innerProduct
    weight = weight_values(params.weights).reshape(int(params.outputChannels), int(params.inputChannels))
    bias = weight_values(params.bias) if params.hasBias else np.zeros(weight.shape[0], np.float32)
    return weight, bias


def run_head(nn_spec, features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Evaluate the head's layers in order (innerProduct, sigmoid/linear activations)."""
    values = dict(features)
    for layer in nn_spec.layers:
        kind = layer.WhichOneof("layer")
        x = values[layer.input[0]]
        if kind == "innerProduct":
            weight, bias = inner_product(layer)
            values[layer.output[0]] = (x @ weight.T + bias).astype(np.float32)
        elif kind == "activation" and layer.activation.WhichOneof("NonlinearityType") == "sigmoid":
            values[layer.output[0]] = (1.0 / (1.0 + np.exp(-x))).astype(np.float32)
        else:
            raise UnsupportedHeadLayer(f"head layer {layer.name!r} ({kind}) is not evaluated on Linux")
    return values


class PipelineMILRunner(Runner):
    """The updatable Pipeline: sub-model 0 (ML Program) via the MIL executor, then the head."""

    def __init__(self, contract: Contract, path: Path) -> None:
        import coremltools as ct

        from verify.backends.mil import MILProgramExecutor

        super().__init__(contract)
        spec = ct.utils.load_spec(str(path))
        *backbones, head = spec.pipeline.models
        if len(backbones) != 1 or head.WhichOneof("Type") != "neuralNetwork":
            raise ValueError("expected a Pipeline of one ML Program and one NeuralNetwork head")
        self.backbone = MILProgramExecutor(path, submodel=0)
        self.head = head.neuralNetwork
        for layer in self.head.layers:
            if layer.WhichOneof("layer") not in _HEAD_LAYERS:
                raise UnsupportedHeadLayer(f"head layer {layer.name!r} ({layer.WhichOneof('layer')})")
        self.backend = "MIL executor + numpy head"

    def features(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.backbone.run(inputs)

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return run_head(self.head, self.features(inputs))


@dataclass(frozen=True)
class SgdSettings:
    learning_rate: float
    mini_batch_size: int
    epochs: int


def declared_sgd(nn_spec) -> SgdSettings:
    params = nn_spec.updateParams
    sgd = params.optimizer.sgdOptimizer
    batch, epochs = int(sgd.miniBatchSize.defaultValue), int(params.epochs.defaultValue)
    return SgdSettings(float(sgd.learningRate.defaultValue), batch, epochs)


def replay_update(
    features: np.ndarray, target: np.ndarray, weight: np.ndarray, bias: np.ndarray, sgd: SgdSettings
) -> tuple[np.ndarray, np.ndarray]:
    """SGD on mean((sigmoid(f W^T + b) - t)^2) over batch and tokens; returns the new (W, b)."""
    weight, bias = weight.astype(np.float64), bias.astype(np.float64)
    features, target = features.astype(np.float64), target.astype(np.float64)
    for _ in range(sgd.epochs):
        for start in range(0, len(features), sgd.mini_batch_size):
            f, t = features[start : start + sgd.mini_batch_size], target[start : start + sgd.mini_batch_size]
            p = 1.0 / (1.0 + np.exp(-(f @ weight.T + bias)))
            grad_logits = 2.0 * (p - t) * p * (1.0 - p) / t.size
            weight -= sgd.learning_rate * grad_logits.T @ f
            bias -= sgd.learning_rate * grad_logits.sum(axis=0)
    return weight.astype(np.float32), bias.astype(np.float32)
