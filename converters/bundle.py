"""Build a bundle: artifacts, contract.json, goldens, support files and manifest.json.

The bundle is assembled in a staging directory and published in one step, so an
existing bundle is replaced only when the new one is complete.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

from contracts import MANIFEST_FORMAT, ArtifactSpec, Contract, resolve_metadata
from contracts.environment import package_versions
from contracts.hashing import artifact_content_sha256, tree_sha256
from converters.atomic import staged_directory
from converters.recipes import (
    RECIPES,
    REFERENCE_CODE,
    Inputs,
    Prepared,
    Recipe,
    build_order,
    golden_provenance,
)
from golden.store import read_golden, write_golden
from verify.records import record_artifact

_INTERMEDIATE = ".intermediate"  # files needed during the build only; removed before the manifest
_TOOLS = ("coremltools", "torch", "onnx", "onnxruntime", "transformers", "numpy", "safetensors")

Log = Callable[[str], None]


@dataclass
class BuildOptions:
    weights: dict[str, Path] = field(default_factory=dict)  # contract name -> weights file
    tokens: Path | None = None
    seed: int = 0
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")
    formats: tuple[str, ...] = ("coreml", "onnx")
    log: Log = field(default=lambda message: None)


def tool_versions() -> dict[str, str]:
    return package_versions(_TOOLS)


class _Steps:
    """Timed, numbered progress lines for one bundle."""

    def __init__(self, name: str, total: int, log: Log) -> None:
        self.name, self.total, self.log, self.done = name, total, log, 0

    def run(self, label: str, action: Callable[[], object]) -> object:
        self.done += 1
        start = time.perf_counter()
        result = action()
        self.log(f"{self.name} [{self.done}/{self.total}] {label} ({time.perf_counter() - start:.1f} s)")
        return result


def _selected(contract: Contract, options: BuildOptions) -> list[ArtifactSpec]:
    return [
        a for a in contract.artifacts if a.precision in options.precisions and a.format in options.formats
    ]


def _write_artifact(
    artifact: ArtifactSpec,
    module: torch.nn.Module,
    recipe: Recipe,
    example: tuple[torch.Tensor, ...],
    staging: Path,
    metadata: dict[str, str],
) -> None:
    contract, target = recipe.contract, staging / artifact.filename
    if artifact.format == "coreml":
        from converters.coreml import (
            DerivedInputs,
            convert_to_mlprogram,
            enumerated_example,
            quantize_weights_int8,
        )

        compute = artifact.compute_precision or artifact.precision
        converted, fed = module, example
        if artifact.enumerated is not None:
            converted = DerivedInputs(module, contract, artifact)
            fed = enumerated_example(contract, artifact, example)
        sees = contract.as_artifact_sees_it(artifact)
        model = convert_to_mlprogram(converted, sees, fed, compute, metadata)
        if artifact.precision == "int8":
            model = quantize_weights_int8(model, recipe.coreml_int8_float_weights(module))
        model.save(str(target))
    elif artifact.format == "onnx":
        from converters import onnx_quantize
        from converters.onnx_export import export_onnx

        if artifact.precision == "fp32":
            export_onnx(module, contract, example, target, metadata)
            return
        source = staging / contract.artifact("onnx-fp32").filename
        if not source.exists():  # fp32 not requested: export it as an intermediate
            source = staging / _INTERMEDIATE / source.name
            source.parent.mkdir(exist_ok=True)
            export_onnx(module, contract, example, source, metadata)
        if artifact.precision == "fp16":
            onnx_quantize.convert_onnx_fp16(source, target)
        else:
            recipe.onnx_int8(source, target)
    else:
        raise ValueError(f"unknown artifact format {artifact.format!r}")


def _write_manifest(staging: Path, contract: Contract, facts: dict[str, str], extra: dict) -> None:
    shutil.rmtree(staging / _INTERMEDIATE, ignore_errors=True)
    _record_artifacts(staging, contract)
    files = tree_sha256(staging)
    entries = [(a.key, a.filename) for a in contract.artifacts]
    if contract.training:
        entries.append((contract.training.key, contract.training.filename))
    artifacts = {}
    for key, filename in entries:
        path = staging / filename
        if not path.exists():
            continue
        files_of = path.rglob("*") if path.is_dir() else [path]
        artifacts[key] = {
            "path": filename,
            "size_bytes": sum(p.stat().st_size for p in files_of if p.is_file()),
            "content_sha256": artifact_content_sha256(path),
        }
    manifest = {
        "manifest_format": MANIFEST_FORMAT,
        "contract": {"name": contract.name, "version": contract.version},
        "files": files,
        "artifacts": artifacts,
        "weights_provenance": facts["weights_provenance"],
        "encoder_fingerprint": facts["encoder_fingerprint"],
        "reference_code_sha256": REFERENCE_CODE,
        "tools": tool_versions(),
        **extra,
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def _record_artifacts(staging: Path, contract: Contract) -> None:
    """What the verifier derives again from each artifact: graph signature and self-goldens."""
    golden = read_golden(staging / "golden")
    for artifact in contract.artifacts:
        if (staging / artifact.filename).exists():
            record_artifact(staging, contract, artifact, golden)


def build_bundle(recipe: Recipe, prepared: Prepared, final: Path, options: BuildOptions) -> Path:
    """One model's bundle: goldens, artifacts, the recipe's extras, support files and manifest."""
    contract = recipe.contract
    artifacts = _selected(contract, options)
    steps = _Steps(contract.name, 2 + len(artifacts) + len(prepared.extras), options.log)
    metadata = resolve_metadata(contract, prepared.facts)
    with staged_directory(final) as staging:
        tensors, info = prepared.golden
        info = {**info, **golden_provenance(contract, prepared.facts)}
        steps.run("golden vectors", lambda: write_golden(staging / "golden", tensors, info))
        for artifact in artifacts:
            convert = partial(
                _write_artifact, artifact, prepared.module, recipe, prepared.example, staging, metadata
            )
            steps.run(f"{artifact.key} → {artifact.filename}", convert)
        for label, write_extra in prepared.extras:
            steps.run(label, partial(write_extra, staging))

        def support_files() -> None:
            (staging / "contract.json").write_text(contract.to_json())
            prepared.support(staging)
            extra = {"seed": options.seed, "sources": prepared.sources}
            _write_manifest(staging, contract, prepared.facts, extra)

        steps.run(
            f"contract, {prepared.support_label}, graph signatures, self-goldens, manifest", support_files
        )
    return final


def build_bundles(output: Path, models: tuple[str, ...], options: BuildOptions) -> list[Path]:
    """Build the requested bundles under ``output``, each model after the models it consumes;
    a consumed model's reference is loaded once, whether or not its bundle is requested."""
    inputs = Inputs(options.weights, options.tokens, options.seed)
    order = build_order(models)
    loaded = {name: RECIPES[name].load(inputs) for name in order}  # every input checked first
    prepared: dict[str, Prepared] = {}
    built = []
    for name in order:
        recipe = RECIPES[name]
        start = time.perf_counter()
        prepared[name] = recipe.prepare(loaded[name], inputs, prepared, options.formats)
        rows = len(next(iter(prepared[name].golden[0].values())))
        options.log(f"{name} reference on {rows} golden rows ({time.perf_counter() - start:.1f} s)")
        if name in models:
            built.append(build_bundle(recipe, prepared[name], output / name, options))
    return built
