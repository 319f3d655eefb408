"""Core ML structure: model type, spec version, input/output names, dtypes and flexible ranges."""

from __future__ import annotations

import itertools
from pathlib import Path

from contracts import Contract, TensorSpec
from verify.checks.metadata import check_metadata
from verify.result import CheckResult, failed, verdict

_DTYPES = {"float32": "FLOAT32", "int32": "INT32", "float16": "FLOAT16"}


def load_spec(path: Path):
    """The Model proto of an .mlpackage, without loading the model (works on Linux)."""
    import coremltools as ct

    return ct.utils.load_spec(str(path))


def array_problems(spec: TensorSpec, feature, check_shape: bool) -> list[str]:
    from coremltools.proto import FeatureTypes_pb2 as ft

    kind = feature.type.WhichOneof("Type")
    if kind != "multiArrayType":
        return [f"{spec.name} is a {kind}, not a multiArray"]
    array = feature.type.multiArrayType
    problems = []
    dtype = ft.ArrayFeatureType.ArrayDataType.Name(array.dataType)
    if dtype != _DTYPES[spec.dtype]:
        problems.append(f"{spec.name} dtype {dtype} != {_DTYPES[spec.dtype]}")
    if not check_shape:
        return problems
    enumerated = sorted(tuple(s.shape) for s in array.enumeratedShapes.shapes)
    if any(dim.choices for dim in spec.shape) or enumerated:
        return problems + _enumerated_problems(spec, array, enumerated)
    ranges = [(r.lowerBound, r.upperBound) for r in array.shapeRange.sizeRanges]
    if not ranges:
        ranges = [(d, d) for d in array.shape]
    wanted = [(dim.lower, dim.upper) for dim in spec.shape]
    if ranges != wanted:
        shown = " x ".join(f"{lo}..{hi}" if lo != hi else str(lo) for lo, hi in ranges)
        want = " x ".join(f"{lo}..{hi}" if lo != hi else str(lo) for lo, hi in wanted)
        problems.append(f"{spec.name} shape {shown} != contract {want}")
    return problems


def _enumerated_problems(spec: TensorSpec, array, enumerated: list[tuple[int, ...]]) -> list[str]:
    """An enumerated input holds exactly the shapes the contract enumerates, and no range."""
    wanted = sorted(itertools.product(*[d.choices or range(d.lower, d.upper + 1) for d in spec.shape]))
    contract_shapes = " x ".join(d.describe() for d in spec.shape)
    if array.shapeRange.sizeRanges:
        return [f"{spec.name} has flexible ranges, the contract enumerates {contract_shapes}"]
    if enumerated != wanted:
        shown = ", ".join("x".join(map(str, s)) for s in enumerated) or "none"
        return [f"{spec.name} enumerated shapes {shown} != contract {contract_shapes}"]
    return []


def check_coreml_structure(key: str, contract: Contract, spec) -> CheckResult:
    name = f"{key}/structure"
    problems = []
    model_type = spec.WhichOneof("Type")
    if model_type != contract.coreml.model_type:
        problems.append(f"model type {model_type} != {contract.coreml.model_type}")
    if spec.specificationVersion != contract.coreml.spec_version:
        problems.append(
            f"spec version {spec.specificationVersion} != {contract.coreml.spec_version} "
            f"({contract.coreml.deployment_target})"
        )
    sees = contract.as_artifact_sees_it(contract.artifact(key))
    for kind, wanted, present, check_shape in (
        ("inputs", sees.inputs, spec.description.input, True),
        ("outputs", contract.outputs, spec.description.output, False),
    ):
        names = [f.name for f in present]
        if names != [t.name for t in wanted]:
            problems.append(f"{kind} {names} != contract {[t.name for t in wanted]}")
            continue
        for tensor, feature in zip(wanted, present, strict=True):
            problems += array_problems(tensor, feature, check_shape)
    shapes = " x ".join(d.describe() for d in sees.inputs[0].shape)
    return verdict(
        name, problems, f"{model_type} v{spec.specificationVersion}, {sees.inputs[0].name} {shapes}"
    )


#: What the app must set for each shape strategy (Apple's flexible-inputs guide; coremltools
#: issues #2370 and #1029 report 0 % Neural Engine use for range shapes at non-default sizes).
RUNTIME_HINTS = {
    "range": "set MLModelConfiguration.optimizationHints.reshapeFrequency = .infrequent (iOS 17.4+) "
    "so the Neural Engine keeps a range-shaped model at the shapes it sees; without it the "
    "model may run on CPU/GPU only",
    "enumerated": "pad every input to one of the enumerated shapes; no hint needed",
    "fixed": "none: one shape",
}


def shape_strategy(spec) -> tuple[str, dict[str, str]]:
    """The model's input shape strategy (range, enumerated or fixed) and each input's shapes."""
    shapes, kinds = {}, set()
    for feature in spec.description.input:
        if feature.type.WhichOneof("Type") != "multiArrayType":
            continue
        array = feature.type.multiArrayType
        if array.shapeRange.sizeRanges:
            kinds.add("range")
            ranges = [(r.lowerBound, r.upperBound) for r in array.shapeRange.sizeRanges]
            shapes[feature.name] = " x ".join(f"{lo}..{hi if hi >= 0 else 'inf'}" for lo, hi in ranges)
        elif array.enumeratedShapes.shapes:
            kinds.add("enumerated")
            shapes[feature.name] = ", ".join(
                "x".join(map(str, s.shape)) for s in array.enumeratedShapes.shapes
            )
        else:
            kinds.add("fixed")
            shapes[feature.name] = "x".join(map(str, array.shape))
    strategy = "range" if "range" in kinds else "enumerated" if "enumerated" in kinds else "fixed"
    return strategy, shapes


def check_shape_strategy(key: str, contract: Contract, spec) -> CheckResult:
    """Report the artifact's shape strategy and the runtime hint the app must set for it; fail
    when it is not the strategy the contract states for the artifact."""
    strategy, shapes = shape_strategy(spec)
    wanted = contract.artifact(key).shape_strategy
    problems = [] if strategy == wanted else [f"{strategy} shapes, the contract states {wanted}"]
    described = "; ".join(f"{name} {text}" for name, text in shapes.items())
    return verdict(
        f"{key}/shape-strategy",
        problems,
        f"{strategy} ({described}); app: {RUNTIME_HINTS[strategy]}",
        strategy=strategy,
        shapes=shapes,
        runtime_hint=RUNTIME_HINTS[strategy],
    )


def check_coreml(key: str, contract: Contract, path: Path, facts: dict[str, str]) -> list[CheckResult]:
    try:
        spec = load_spec(path)
    except Exception as exc:  # coremltools raises bare Exceptions for corrupt packages
        return [failed(f"{key}/structure", f"unreadable .mlpackage: {type(exc).__name__}: {str(exc)[:200]}")]
    metadata = dict(spec.description.metadata.userDefined)
    return [
        check_coreml_structure(key, contract, spec),
        check_shape_strategy(key, contract, spec),
        check_metadata(f"{key}/metadata", contract, facts, metadata),
    ]
