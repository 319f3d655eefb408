"""The contract data model: frozen dataclasses with a JSON round trip.

A contract says what every artifact of a model must honour: tensor names,
dtypes, shapes and flexible ranges, the Core ML and ONNX targets, the metadata
keys, the updatable parameters and the numeric tolerances per artifact.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

#: Version of the contract.json layout. A bundle written by a newer toolkit is refused.
CONTRACT_FORMAT = 2
#: Version of the manifest.json layout, written by converters and checked by verify.
MANIFEST_FORMAT = 1
UPDATABLE_KEY = "coreml-updatable"


class ContractError(ValueError):
    """A contract.json that cannot be read or does not fit the data model."""


@dataclass(frozen=True)
class Dim:
    """One tensor dimension: fixed when ``lower == upper``, flexible otherwise."""

    name: str
    lower: int
    upper: int
    #: Enumerated sizes: the dimension accepts these and nothing between them.
    choices: tuple[int, ...] = ()

    @property
    def is_fixed(self) -> bool:
        return self.lower == self.upper

    def accepts(self, size: int) -> bool:
        return size in self.choices if self.choices else self.lower <= size <= self.upper

    def describe(self) -> str:
        if self.choices:
            return "{" + ", ".join(map(str, self.choices)) + "}"
        return str(self.lower) if self.is_fixed else f"{self.lower}..{self.upper}"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: "float32", "int32"
    shape: tuple[Dim, ...]
    description: str = ""
    unit_norm: bool = False  # rows have L2 norm 1
    values: tuple[int, int] | None = None  # inclusive range of integer values (token ids, masks)
    #: Each value is a decision logit (sigmoid > 0.5): compared by flipped decisions and top-10
    #: overlap, where other outputs are compared by their rows' nearest neighbours.
    decisions: bool = False


@dataclass(frozen=True)
class Bound:
    """A limit on one error metric, with the value measured when it was set."""

    metric: str  # a name from verify.compare.METRICS
    limit: float
    measured: float | None = None


@dataclass(frozen=True)
class OutputTolerance:
    output: str
    bounds: tuple[Bound, ...]


def self_bounds(**per_output: tuple[float, float]) -> tuple[OutputTolerance, ...]:
    """Self-golden bounds for another environment: output=(max_abs limit, largest measured)."""
    return tuple(
        OutputTolerance(name, (Bound("max_abs", limit, seen),)) for name, (limit, seen) in per_output.items()
    )


@dataclass(frozen=True)
class DeviceBounds:
    """An artifact's bounds when the Core ML runtime runs it with these compute units."""

    compute_units: str  # CPU_ONLY | CPU_AND_GPU | CPU_AND_NE | ALL
    tolerances: tuple[OutputTolerance, ...]
    measured_on_device: bool = False  # False: derived from the emulation with a margin
    basis: str = ""


@dataclass(frozen=True)
class EnumeratedInputs:
    """An artifact that takes one row at a time at enumerated lengths of one dimension: the
    Neural Engine's preferred shapes (Apple's flexible-inputs guide). Callers pad each row to the
    next enumerated size. Core ML before iOS 18 allows one enumerated input, so inputs the
    artifact derives itself are left out: ``derived`` pairs (input, source) with
    ``input = (source != pad_value)``, as an attention mask follows from 0-padded token ids."""

    dim: str  # the dimension's name in the contract's input shapes: "sequence"
    sizes: tuple[int, ...]
    derived: tuple[tuple[str, str], ...] = ()
    pad_value: int = 0
    batch: int = 1

    def size_for(self, length: int) -> int | None:
        """The smallest enumerated size that holds ``length``; None when none does."""
        return next((size for size in self.sizes if size >= length), None)


@dataclass(frozen=True)
class ArtifactSpec:
    """One deliverable file of a bundle: a format at a precision."""

    format: str  # "coreml" | "onnx"
    precision: str  # "fp32" | "fp16" | "int8"
    filename: str
    tolerances: tuple[OutputTolerance, ...]
    max_size_ratio: float | None = None  # size budget relative to the same format's fp32
    compute_precision: str | None = None  # Core ML compute precision when it differs from `precision`
    #: Bounds against the artifact's own build-time outputs (self-goldens), from run-to-run noise.
    self_tolerances: tuple[OutputTolerance, ...] = ()
    #: ``snr_db`` floor per op against the same format's fp32 program (``--explain``): an op below
    #: it whose inputs are above it is a failure source. None for the fp32 artifacts themselves.
    op_floor: Bound | None = None
    #: Core ML input shapes: "range" (flexible dims), "enumerated" or "fixed".
    shape_strategy: str = "range"
    #: Least share of the estimated cost MLComputePlan puts on the Neural Engine (CPU_AND_NE, ALL;
    #: macOS 14.4+). None: reported, not gated, until the macOS job has measured it.
    min_neural_engine_share: float | None = None
    #: Bounds per Core ML compute unit setting on a device (contracts/device.py); empty: the
    #: emulation's bounds apply everywhere.
    device_bounds: tuple[DeviceBounds, ...] = ()
    #: Distinguishes artifacts of one format and precision ("enumerated"); part of the key.
    variant: str = ""
    #: Enumerated input shapes (shape_strategy "enumerated"); None: the contract's inputs as declared.
    enumerated: EnumeratedInputs | None = None
    #: How far a row's outputs may move with its batch-mates: each golden row at every golden
    #: batch size against the same row at batch 1 (``min_cosine``). None: not stated.
    batch_invariance: Bound | None = None

    def bounds_on(self, compute_units: str | None) -> DeviceBounds | None:
        return next((d for d in self.device_bounds if d.compute_units == compute_units), None)

    @property
    def key(self) -> str:
        return f"{self.format}-{self.precision}" + (f"-{self.variant}" if self.variant else "")

    def tolerance_for(self, output: str) -> OutputTolerance | None:
        return next((t for t in self.tolerances if t.output == output), None)

    def self_tolerance_for(self, output: str) -> OutputTolerance | None:
        return next((t for t in self.self_tolerances if t.output == output), None)


def standard_artifacts(
    model: str,
    tolerances: dict[str, tuple[OutputTolerance, ...]],
    self_tolerances: dict[str, tuple[OutputTolerance, ...]],
    size_ratios: dict[str, float],
    op_floors: dict[str, Bound] | None = None,
    batch_invariance: dict[str, Bound] | None = None,
) -> tuple[ArtifactSpec, ...]:
    """Core ML and ONNX at fp32, fp16 and int8, named ``<model>.<precision>.<extension>``; the
    Core ML int8 program computes in fp16. Arguments are keyed by artifact key (``onnx-int8``)."""
    artifacts = []
    for fmt, extension in (("coreml", "mlpackage"), ("onnx", "onnx")):
        for precision in ("fp32", "fp16", "int8"):
            key = f"{fmt}-{precision}"
            artifacts.append(
                ArtifactSpec(
                    fmt,
                    precision,
                    f"{model}.{precision}.{extension}",
                    tolerances[key],
                    max_size_ratio=size_ratios.get(key),
                    compute_precision="fp16" if key == "coreml-int8" else None,
                    self_tolerances=self_tolerances.get(key, ()),
                    op_floor=(op_floors or {}).get(key),
                    device_bounds=_device_bounds(key, tolerances[key]),
                    batch_invariance=(batch_invariance or {}).get(key),
                )
            )
    return tuple(artifacts)


def _device_bounds(key: str, tolerances: tuple[OutputTolerance, ...]) -> tuple[DeviceBounds, ...]:
    """Core ML's reduced-precision variants get bounds per compute unit setting."""
    from contracts.device import derived_device_bounds

    return derived_device_bounds(tolerances) if key in ("coreml-fp16", "coreml-int8") else ()


@dataclass(frozen=True)
class MetadataField:
    """A required metadata key. ``value`` is fixed by the contract; otherwise
    ``source`` names the bundle fact it must equal (see verify.checks.metadata)."""

    key: str
    value: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class CoreMLTarget:
    model_type: str = "mlProgram"
    deployment_target: str = "iOS17"
    spec_version: int = 8  # iOS 17 / macOS 14


@dataclass(frozen=True)
class OnnxTarget:
    min_opset: int = 17


@dataclass(frozen=True)
class UpdatableParameter:
    """A PyTorch parameter trained on device, and where it lives in the Core ML head."""

    torch_name: str  # "projection.weight"
    layer: str  # Core ML NeuralNetwork layer name
    field: str  # "weights" | "bias" of that innerProduct layer
    shape: tuple[int, ...]


@dataclass(frozen=True)
class OnDeviceTraining:
    """The updatable Core ML model: a Pipeline of a frozen ML Program backbone and a
    NeuralNetwork head whose ``parameters`` Core ML may update with ``loss`` and ``optimizer``."""

    filename: str
    features: TensorSpec  # backbone output = head input
    probabilities: TensorSpec  # sigmoid(logits), the loss input
    parameters: tuple[UpdatableParameter, ...]
    loss: str  # "mean_squared_error" on `probabilities` against `target`
    target: str  # training input holding the multi-hot targets
    optimizer: str  # "sgd"
    learning_rate: float
    learning_rate_range: tuple[float, float]
    mini_batch_size: int
    mini_batch_sizes: tuple[int, ...]  # the update parameter's allowed values
    epochs: int
    epoch_choices: tuple[int, ...]
    shuffle: bool
    tolerances: tuple[OutputTolerance, ...]  # pipeline outputs against the inference goldens
    replay_bound: Bound  # head weights after the golden update, replayed by the verifier
    on_device_bound: Bound  # logits after an MLUpdateTask on macOS against the golden update
    golden_examples: int = 16
    golden_tokens_per_example: int = 4
    golden_seed: int = 20241128

    @property
    def updatable(self) -> tuple[str, ...]:
        return tuple(p.torch_name for p in self.parameters)

    @property
    def key(self) -> str:
        """The updatable model's name in manifests, reports and ``--only``."""
        return UPDATABLE_KEY


@dataclass(frozen=True)
class TokenizerSpec:
    """The tokenizer a bundle ships: each file pinned to the published model's sha256, and the
    file the ``tokenizers`` library loads to reproduce the golden inputs from the golden texts."""

    files: tuple[tuple[str, str], ...]  # (bundle-relative path, sha256)
    load: str  # e.g. "tokenizer/tokenizer.json"
    max_length: int  # truncation, as the reference tokenizes
    #: The conformance fixture the bundle ships for app tokenizers (golden/tokenizer_conformance.py).
    conformance: str | None = None


@dataclass(frozen=True)
class Contract:
    name: str
    version: str
    description: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: tuple[MetadataField, ...]
    artifacts: tuple[ArtifactSpec, ...]
    training: OnDeviceTraining | None = None
    tokenizer: TokenizerSpec | None = None
    golden_batch_sizes: tuple[int, ...] = (1, 7, 64)
    #: The artifact whose weights the fingerprint is recomputed from (contracts others consume).
    fingerprint_from: str | None = None
    #: The contract whose output this model's first input takes; it is built first and pinned
    #: by its fingerprint.
    consumes: str | None = None
    #: What a change beyond tolerance means for the models and people downstream (diff, gate).
    breaking_change: str = "outputs changed beyond tolerance"
    self_golden_rows: int = 8  # golden rows each artifact records its own outputs on (batch 1)
    #: Self-goldens verified where they were recorded (same backend, versions and CPU kernels):
    #: repeated runs and 1, 2 or 4 threads gave identical outputs (docs/TOLERANCES.md).
    self_golden_exact: Bound = Bound("max_abs", 1e-6, 0.0)
    coreml: CoreMLTarget = field(default_factory=CoreMLTarget)
    onnx: OnnxTarget = field(default_factory=OnnxTarget)

    def input(self, name: str) -> TensorSpec:
        return _by_name(self.inputs, name, "input")

    def output(self, name: str) -> TensorSpec:
        return _by_name(self.outputs, name, "output")

    def artifact(self, key: str) -> ArtifactSpec:
        for artifact in self.artifacts:
            if artifact.key == key:
                return artifact
        raise KeyError(f"contract {self.name} has no artifact {key!r}")

    def artifact_inputs(self, artifact: ArtifactSpec) -> tuple[TensorSpec, ...]:
        """The inputs ``artifact`` itself takes: the contract's, or for enumerated shapes those it
        does not derive, at its batch size and enumerated sizes."""
        enumerated = artifact.enumerated
        if enumerated is None:
            return self.inputs
        derived = {name for name, _ in enumerated.derived}

        def dim(d: Dim) -> Dim:
            if d.name == enumerated.dim:
                return Dim(d.name, min(enumerated.sizes), max(enumerated.sizes), enumerated.sizes)
            return Dim(d.name, enumerated.batch, enumerated.batch) if d == self.batch else d

        return tuple(
            replace(spec, shape=tuple(dim(d) for d in spec.shape))
            for spec in self.inputs
            if spec.name not in derived
        )

    def as_artifact_sees_it(self, artifact: ArtifactSpec) -> Contract:
        """This contract with ``artifact``'s own inputs (see ``artifact_inputs``)."""
        inputs = self.artifact_inputs(artifact)
        return self if inputs is self.inputs else replace(self, inputs=inputs)

    def golden_batches(self, artifact: ArtifactSpec) -> tuple[int, ...]:
        """The golden batch sizes ``artifact`` is run at: one row at a time for enumerated shapes."""
        return (artifact.enumerated.batch,) if artifact.enumerated else self.golden_batch_sizes

    @property
    def updatable(self) -> tuple[str, ...]:
        """PyTorch names of the parameters trainable on device."""
        return self.training.updatable if self.training else ()

    @property
    def training_spec(self) -> OnDeviceTraining:
        """``training``, for code that runs only on contracts that declare on-device training."""
        if self.training is None:
            raise ContractError(f"contract {self.name} declares no on-device training")
        return self.training

    @property
    def tokenizer_spec(self) -> TokenizerSpec:
        """``tokenizer``, for code that runs only on contracts that ship one."""
        if self.tokenizer is None:
            raise ContractError(f"contract {self.name} ships no tokenizer")
        return self.tokenizer

    @property
    def batch(self) -> Dim:
        return self.inputs[0].shape[0]

    def to_dict(self) -> dict[str, Any]:
        return {"contract_format": CONTRACT_FORMAT, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Contract:
        try:
            fmt = data.get("contract_format")
            if fmt != CONTRACT_FORMAT:
                newer = isinstance(fmt, int) and fmt > CONTRACT_FORMAT
                raise ContractError(
                    f"contract_format {fmt!r} is not supported (this toolkit reads {CONTRACT_FORMAT})"
                    + ("; upgrade coreml-contract" if newer else "")
                )
            return cls(
                name=data["name"],
                version=data["version"],
                description=data["description"],
                inputs=tuple(_tensor(t) for t in data["inputs"]),
                outputs=tuple(_tensor(t) for t in data["outputs"]),
                metadata=tuple(MetadataField(**m) for m in data["metadata"]),
                artifacts=tuple(_artifact(a) for a in data["artifacts"]),
                training=_training(data["training"]) if data.get("training") else None,
                tokenizer=_tokenizer(data["tokenizer"]) if data.get("tokenizer") else None,
                golden_batch_sizes=tuple(data["golden_batch_sizes"]),
                fingerprint_from=data.get("fingerprint_from"),
                consumes=data.get("consumes"),
                breaking_change=data.get("breaking_change", Contract.breaking_change),
                self_golden_rows=data.get("self_golden_rows", 8),
                self_golden_exact=Bound(**data.get("self_golden_exact", asdict(Contract.self_golden_exact))),
                coreml=CoreMLTarget(**data["coreml"]),
                onnx=OnnxTarget(**data["onnx"]),
            )
        except ContractError:
            raise
        except (KeyError, TypeError, AttributeError) as exc:
            raise ContractError(f"malformed contract: {type(exc).__name__}: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> Contract:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractError(f"contract is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ContractError("contract is not a JSON object")
        return cls.from_dict(data)


def _by_name(specs: tuple[TensorSpec, ...], name: str, kind: str) -> TensorSpec:
    for spec in specs:
        if spec.name == name:
            return spec
    raise KeyError(f"no {kind} named {name!r}")


def _tensor(data: dict[str, Any]) -> TensorSpec:
    return TensorSpec(
        name=data["name"],
        dtype=data["dtype"],
        shape=tuple(_dim(d) for d in data["shape"]),
        description=data.get("description", ""),
        unit_norm=data.get("unit_norm", False),
        values=tuple(data["values"]) if data.get("values") is not None else None,
        decisions=data.get("decisions", False),
    )


def _dim(data: dict[str, Any]) -> Dim:
    return Dim(data["name"], data["lower"], data["upper"], tuple(data.get("choices", ())))


def _tolerances(data: list[dict[str, Any]]) -> tuple[OutputTolerance, ...]:
    return tuple(
        OutputTolerance(output=t["output"], bounds=tuple(Bound(**b) for b in t["bounds"])) for t in data
    )


_TRAINING_NESTED = (
    "features",
    "probabilities",
    "parameters",
    "tolerances",
    "replay_bound",
    "on_device_bound",
)


def _training(data: dict[str, Any]) -> OnDeviceTraining:
    tuples = ("learning_rate_range", "mini_batch_sizes", "epoch_choices")
    plain: dict[str, Any] = {k: v for k, v in data.items() if k not in {*_TRAINING_NESTED, *tuples}}
    as_tuples: dict[str, Any] = {k: tuple(data[k]) for k in tuples}
    return OnDeviceTraining(
        **plain,
        **as_tuples,
        features=_tensor(data["features"]),
        probabilities=_tensor(data["probabilities"]),
        parameters=tuple(UpdatableParameter(**{**p, "shape": tuple(p["shape"])}) for p in data["parameters"]),
        tolerances=_tolerances(data["tolerances"]),
        replay_bound=Bound(**data["replay_bound"]),
        on_device_bound=Bound(**data["on_device_bound"]),
    )


def _tokenizer(data: dict[str, Any]) -> TokenizerSpec:
    return TokenizerSpec(
        files=tuple((str(path), str(digest)) for path, digest in data["files"]),
        load=data["load"],
        max_length=int(data["max_length"]),
        conformance=data.get("conformance"),
    )


def _artifact(data: dict[str, Any]) -> ArtifactSpec:
    return ArtifactSpec(
        format=data["format"],
        precision=data["precision"],
        filename=data["filename"],
        tolerances=_tolerances(data["tolerances"]),
        max_size_ratio=data.get("max_size_ratio"),
        compute_precision=data.get("compute_precision"),
        self_tolerances=_tolerances(data.get("self_tolerances", [])),
        op_floor=Bound(**data["op_floor"]) if data.get("op_floor") else None,
        shape_strategy=data.get("shape_strategy", "range"),
        min_neural_engine_share=data.get("min_neural_engine_share"),
        device_bounds=tuple(
            DeviceBounds(
                d["compute_units"],
                _tolerances(d["tolerances"]),
                bool(d.get("measured_on_device", False)),
                str(d.get("basis", "")),
            )
            for d in data.get("device_bounds", [])
        ),
        variant=data.get("variant", ""),
        enumerated=_enumerated(data["enumerated"]) if data.get("enumerated") else None,
        batch_invariance=Bound(**data["batch_invariance"]) if data.get("batch_invariance") else None,
    )


def _enumerated(data: dict[str, Any]) -> EnumeratedInputs:
    return EnumeratedInputs(
        dim=data["dim"],
        sizes=tuple(int(s) for s in data["sizes"]),
        derived=tuple((str(name), str(source)) for name, source in data.get("derived", ())),
        pad_value=int(data.get("pad_value", 0)),
        batch=int(data.get("batch", 1)),
    )


def resolve_metadata(contract: Contract, facts: dict[str, str]) -> dict[str, str]:
    """Expected metadata: fixed values from the contract, the rest from bundle ``facts``
    (``tokens``, ``weights_provenance``, ``encoder_fingerprint``)."""
    resolved = {}
    for item in contract.metadata:
        if item.value is not None:
            resolved[item.key] = item.value
        elif item.source in facts:
            resolved[item.key] = facts[item.source]
        else:
            raise ContractError(f"metadata {item.key!r} needs bundle fact {item.source!r}, which is missing")
    return resolved
