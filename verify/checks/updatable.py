"""The updatable Core ML model: Pipeline structure, exactly the contract's updatable parameters,
their fp32 values, the declared loss/optimizer, metadata, numerics and the golden update."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contracts import ArtifactSpec, Contract
from contracts.schema import UPDATABLE_KEY as KEY
from contracts.schema import OnDeviceTraining
from golden.store import PERSONALIZATION_STEM, Golden, GoldenError, read_golden
from verify.backends.head import PipelineMILRunner, declared_sgd, inner_product, replay_update
from verify.backends.runners import NativeCoreMLRunner, coreml_backend, native_coreml_available
from verify.bundle import Bundle
from verify.checks.coreml_structure import array_problems, load_spec
from verify.checks.integrity import stale_golden_problems
from verify.checks.metadata import check_metadata
from verify.checks.numerics import check_numerics
from verify.result import CheckResult, failed, skipped, verdict


def check_pipeline_structure(contract: Contract, spec) -> CheckResult:
    training = contract.training_spec
    problems = []
    if spec.WhichOneof("Type") != "pipeline":
        return failed(f"{KEY}/structure", f"model type {spec.WhichOneof('Type')} != pipeline")
    if spec.specificationVersion != contract.coreml.spec_version:
        problems.append(f"spec version {spec.specificationVersion} != {contract.coreml.spec_version}")
    if not spec.isUpdatable:
        problems.append("the pipeline is not marked updatable")
    kinds = [m.WhichOneof("Type") for m in spec.pipeline.models]
    if kinds != ["mlProgram", "neuralNetwork"]:
        problems.append(f"sub-models {kinds} != ['mlProgram', 'neuralNetwork']")
        return verdict(f"{KEY}/structure", problems, "")
    backbone, head = spec.pipeline.models
    outputs = (contract.output("logits"), training.probabilities)
    for kind, wanted, present in (
        ("inputs", contract.inputs, spec.description.input),
        ("outputs", outputs, spec.description.output),
        ("backbone outputs", (training.features,), backbone.description.output),
        ("head inputs", (training.features,), head.description.input),
    ):
        names = [f.name for f in present]
        if names != [t.name for t in wanted]:
            problems.append(f"{kind} {names} != contract {[t.name for t in wanted]}")
            continue
        for tensor, feature in zip(wanted, present, strict=True):
            problems += array_problems(tensor, feature, check_shape=kind != "backbone outputs")
    wanted_training = [*(t.name for t in contract.inputs), training.target]
    found_training = [f.name for f in spec.description.trainingInput]
    if found_training != wanted_training:
        problems.append(f"training inputs {found_training} != {wanted_training}")
    return verdict(f"{KEY}/structure", problems, "Pipeline(mlProgram → neuralNetwork), updatable")


def _updatable_fields(layer) -> list[str]:
    typed = getattr(layer, layer.WhichOneof("layer"))
    return [
        fd.name
        for fd in typed.DESCRIPTOR.fields
        if fd.message_type is not None
        and fd.message_type.name == "WeightParams"
        and getattr(typed, fd.name).isUpdatable
    ]


def check_updatable_parameters(training: OnDeviceTraining, spec) -> CheckResult:
    """Exactly the contract's parameters are updatable; no other layer or model is."""
    problems = [
        f"sub-model {i} ({m.WhichOneof('Type')}) is marked updatable; only the head may be"
        for i, m in enumerate(spec.pipeline.models[:-1])
        if m.isUpdatable
    ]
    head = spec.pipeline.models[-1]
    if not head.isUpdatable:
        problems.append("the head model is not marked updatable")
    wanted = {(p.layer, p.field): p.torch_name for p in training.parameters}
    found = set()
    for layer in head.neuralNetwork.layers:
        fields = _updatable_fields(layer)
        if layer.isUpdatable and not fields:
            problems.append(f"layer {layer.name!r} is marked updatable but none of its weights are")
        found |= {(layer.name, f) for f in fields if layer.isUpdatable}
    for key in sorted(set(wanted) - found):
        problems.append(f"{wanted[key]} ({key[0]}.{key[1]}) is not updatable")
    for layer, field in sorted(found - set(wanted)):
        allowed = ", ".join(wanted.values())
        problems.append(f"{layer}.{field} is updatable; the contract allows only {allowed}")
    return verdict(f"{KEY}/updatable-parameters", problems, ", ".join(wanted.values()))


def check_head_weights(training: OnDeviceTraining, spec, golden: Golden | None) -> CheckResult:
    """Shapes (325, 512) and (325,), fp32 storage, values bit-equal to the reference's."""
    name = f"{KEY}/head-weights"
    layers = {layer.name: layer for layer in spec.pipeline.models[-1].neuralNetwork.layers}
    problems = []
    for param in training.parameters:
        layer = layers.get(param.layer)
        if layer is None or layer.WhichOneof("layer") != "innerProduct":
            problems.append(f"no innerProduct layer {param.layer!r} for {param.torch_name}")
            continue
        weights = getattr(layer.innerProduct, param.field)
        if not len(weights.floatValue):
            problems.append(f"{param.torch_name} is not stored as fp32 (updatable layers need fp32)")
            continue
        value = dict(zip(("weights", "bias"), inner_product(layer), strict=True))[param.field]
        if value.shape != param.shape or len(weights.floatValue) != int(np.prod(param.shape)):
            problems.append(f"{param.torch_name} shape {value.shape} != contract {param.shape}")
            continue
        if golden is None:
            problems.append("no personalization golden to compare the reference values with")
            continue
        reference = golden.tensors[f"initial/{param.torch_name}"]
        if not np.array_equal(value, reference):
            differing = int((value != reference).sum())
            problems.append(f"{param.torch_name}: {differing} values differ from the reference")
    return verdict(name, problems, "fp32, reference values, exact")


def check_training_config(training: OnDeviceTraining, spec) -> CheckResult:
    """Loss, optimizer, update parameters and shuffling as the contract declares them."""
    params = spec.pipeline.models[-1].neuralNetwork.updateParams
    problems = []
    losses = [(loss.name, loss.WhichOneof("LossLayerType")) for loss in params.lossLayers]
    if [kind for _, kind in losses] != ["meanSquaredErrorLossLayer"]:
        problems.append(f"loss layers {losses} != one meanSquaredErrorLossLayer")
    else:
        mse = params.lossLayers[0].meanSquaredErrorLossLayer
        if (mse.input, mse.target) != (training.probabilities.name, training.target):
            problems.append(
                f"loss on {mse.input} vs {mse.target}, "
                f"contract: {training.probabilities.name} vs {training.target}"
            )
    if params.optimizer.WhichOneof("OptimizerType") != "sgdOptimizer":
        problems.append(f"optimizer {params.optimizer.WhichOneof('OptimizerType')} != sgd")
    else:
        sgd = params.optimizer.sgdOptimizer
        declared = {
            "learning rate": (sgd.learningRate.defaultValue, training.learning_rate),
            "learning rate range": (
                (sgd.learningRate.range.minValue, sgd.learningRate.range.maxValue),
                training.learning_rate_range,
            ),
            "mini-batch size": (sgd.miniBatchSize.defaultValue, training.mini_batch_size),
            "mini-batch sizes": (tuple(sgd.miniBatchSize.set.values), training.mini_batch_sizes),
            "momentum": (sgd.momentum.defaultValue, 0.0),
            "epochs": (params.epochs.defaultValue, training.epochs),
            "epoch choices": (tuple(params.epochs.set.values), training.epoch_choices),
            "shuffle": (params.shuffle.defaultValue, training.shuffle),
        }
        for label, (found, wanted) in declared.items():
            if not np.allclose(np.asarray(found, float), np.asarray(wanted, float), rtol=1e-6, atol=0):
                problems.append(f"{label} {found} != contract {wanted}")
    summary = (
        f"MSE + SGD lr {training.learning_rate}, batch {training.mini_batch_size}, {training.epochs} epochs"
    )
    return verdict(f"{KEY}/training-config", problems, summary)


def load_personalization(bundle: Bundle) -> tuple[Golden | None, CheckResult]:
    name = "personalization-golden"
    try:
        golden = read_golden(bundle.path("golden"), PERSONALIZATION_STEM, same_rows=False)
    except (GoldenError, ValueError) as exc:  # ValueError: a path that is no regular file
        return None, failed(name, str(exc))
    training = bundle.registered.training_spec
    problems = []
    wanted = ["embedding", "target", "updated_logits"] + [
        f"{stage}/{p.torch_name}" for stage in ("initial", "updated") for p in training.parameters
    ]
    missing = [key for key in wanted if key not in golden.tensors]
    if missing:
        problems.append(f"missing tensors {missing}")
    elif not all(np.isfinite(golden.tensors[k]).all() for k in wanted):
        problems.append("holds NaN or Inf")
    problems += stale_golden_problems(bundle, golden.info)
    summary = f"{golden.info.get('steps')} SGD steps on {len(golden.tensors.get('target', []))} examples"
    return (None if problems else golden), verdict(name, problems, summary)


def check_update_replay(training: OnDeviceTraining, spec, runner, golden: Golden) -> CheckResult:
    """The artifact's backbone, head and declared SGD settings reproduce the golden update."""
    head = spec.pipeline.models[-1].neuralNetwork
    layer = next((x for x in head.layers if x.name == training.parameters[0].layer), None)
    if layer is None:
        return failed(f"{KEY}/update-replay", f"no layer {training.parameters[0].layer!r}")
    weight, bias = inner_product(layer)
    embedding = runner.contract.inputs[0].name
    features = runner.features({embedding: golden.tensors["embedding"]})[training.features.name]
    replayed = replay_update(features, golden.tensors["target"], weight, bias, declared_sgd(head))
    by_field = dict(zip(("weights", "bias"), replayed, strict=True))
    errors = {
        p.torch_name: float(np.abs(by_field[p.field] - golden.tensors[f"updated/{p.torch_name}"]).max())
        for p in training.parameters
    }
    bound = training.replay_bound
    detail = ", ".join(f"{k} max_abs {v:.2e}" for k, v in errors.items())
    problems = [] if max(errors.values()) <= bound.limit else [f"{detail} > {bound.limit:g} after the update"]
    return verdict(f"{KEY}/update-replay", problems, f"{detail} (<= {bound.limit:g})", max_abs=errors)


def updatable_artifact(training: OnDeviceTraining) -> ArtifactSpec:
    """The updatable model as an artifact for the numerics check: fp32, the contract's bounds."""
    return ArtifactSpec("coreml", "updatable", training.filename, training.tolerances)


def check_updatable(
    bundle: Bundle,
    path: Path,
    facts: dict[str, str],
    golden: Golden | None,
    numerics: bool = True,
    compute_units: str | None = None,
    numerics_off: str = "numerics disabled (--no-numerics)",
) -> list[CheckResult]:
    """Every check on the updatable model. ``golden``: the inference goldens, None if unusable."""
    contract = bundle.registered
    training = contract.training_spec
    try:
        spec = load_spec(path)
    except Exception as exc:  # coremltools raises bare Exceptions for corrupt packages
        return [failed(f"{KEY}/structure", f"unreadable .mlpackage: {type(exc).__name__}: {str(exc)[:200]}")]
    structure = check_pipeline_structure(contract, spec)
    if spec.WhichOneof("Type") != "pipeline" or len(spec.pipeline.models) < 2:
        return [structure]
    personalization, golden_check = load_personalization(bundle)
    results = [
        structure,
        golden_check,
        check_updatable_parameters(training, spec),
        check_head_weights(training, spec, personalization),
        check_training_config(training, spec),
        check_metadata(f"{KEY}/metadata", contract, facts, dict(spec.description.metadata.userDefined)),
    ]
    if not numerics:
        return [*results, skipped(f"{KEY}/numerics", numerics_off)]
    if structure.failed:
        return [*results, skipped(f"{KEY}/numerics", "structure check failed; not run")]
    try:
        mil = PipelineMILRunner(contract, path)
        backend = coreml_backend(compute_units, native_coreml_available())
        runner = mil if backend == "mil" else NativeCoreMLRunner(contract, path, backend)
    except Exception as exc:  # unsupported op or head layer, unreadable program
        return [*results, failed(f"{KEY}/numerics", f"{type(exc).__name__}: {exc}")]
    if golden is None:
        results.append(skipped(f"{KEY}/numerics", "no usable goldens (see the golden check)"))
    else:
        results += check_numerics(updatable_artifact(training), contract, golden, runner)
    if personalization is None:
        results.append(skipped(f"{KEY}/update-replay", "no usable personalization golden"))
    else:
        results.append(check_update_replay(training, spec, mil, personalization))
    results.append(check_on_device_update(contract, path, personalization, backend))
    return results


def check_on_device_update(
    contract: Contract, path: Path, personalization: Golden | None, backend: str
) -> CheckResult:
    """On macOS, run an MLUpdateTask on the golden training set (verify/backends/macos/personalize.swift)."""
    name = f"{KEY}/on-device-update"
    if backend == "mil":
        return skipped(name, "needs macOS: Core ML compiles and updates models only there")
    if personalization is None:
        return skipped(name, "no usable personalization golden")
    from verify.backends.macos import run_update_task

    return run_update_task(name, path, personalization, contract)
