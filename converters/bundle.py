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
from pathlib import Path

import numpy as np
import torch

from contracts import ENCODER_V1, MANIFEST_FORMAT, PERSONALITY_V1, ArtifactSpec, Contract, resolve_metadata
from contracts.environment import package_versions
from contracts.hashing import artifact_content_sha256, sha256_file, tree_sha256
from converters.atomic import staged_directory
from converters.recipes import coreml_int8_float_weights, onnx_int8_recipe
from golden.generate import encoder_golden, load_corpus, personality_golden, personalization_golden
from golden.store import PERSONALIZATION_STEM, read_golden, write_golden
from reference.encoder import TOKENIZER_FILES, LoadedEncoder, load_encoder
from reference.personality import LoadedPersonality, load_personality
from reference.tokens import load_tokens
from reference.version import reference_code_sha256
from verify.records import record_artifact

_INTERMEDIATE = ".intermediate"  # files needed during the build only; removed before the manifest
#: Hashed once, when the reference code is imported: goldens and manifest record the code that ran.
_REFERENCE_CODE = reference_code_sha256()
_TOOLS = ("coremltools", "torch", "onnx", "onnxruntime", "transformers", "numpy", "safetensors")

Log = Callable[[str], None]


@dataclass
class BuildOptions:
    encoder_weights: Path | None = None
    personality_weights: Path | None = None
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
    contract: Contract,
    example: tuple[torch.Tensor, ...],
    staging: Path,
    metadata: dict[str, str],
) -> None:
    target = staging / artifact.filename
    if artifact.format == "coreml":
        from converters.coreml import convert_to_mlprogram, quantize_weights_int8

        compute = artifact.compute_precision or artifact.precision
        model = convert_to_mlprogram(module, contract, example, compute, metadata)
        if artifact.precision == "int8":
            model = quantize_weights_int8(model, coreml_int8_float_weights(contract.name, module))
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
            onnx_int8_recipe(contract)(source, target)
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
        "reference_code_sha256": _REFERENCE_CODE,
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


def _write_common(staging: Path, contract: Contract) -> None:
    (staging / "contract.json").write_text(contract.to_json())


def build_encoder_bundle(
    final: Path, encoder: LoadedEncoder, golden: tuple[dict[str, np.ndarray], dict], options: BuildOptions
) -> Path:
    contract = ENCODER_V1
    artifacts = _selected(contract, options)
    steps = _Steps(contract.name, 2 + len(artifacts), options.log)
    facts = {
        "weights_provenance": encoder.describe_provenance(),
        "encoder_fingerprint": encoder.fingerprint,
    }
    metadata = resolve_metadata(contract, facts)
    with staged_directory(final) as staging:
        tensors, info = golden
        steps.run(
            "golden vectors",
            lambda: write_golden(
                staging / "golden", tensors, {**info, **_golden_provenance(contract, facts)}
            ),
        )
        example = tuple(encoder.tokenize(["a short text", "a somewhat longer example text"]).values())
        for artifact in artifacts:
            steps.run(
                f"{artifact.key} → {artifact.filename}",
                lambda a=artifact: _write_artifact(a, encoder.model, contract, example, staging, metadata),
            )

        def support_files() -> None:
            _write_common(staging, contract)
            (staging / "tokenizer").mkdir()
            for name in TOKENIZER_FILES:
                shutil.copyfile(encoder.tokenizer_dir / name, staging / "tokenizer" / name)
            _write_manifest(
                staging,
                contract,
                facts,
                {
                    "seed": options.seed,
                    "sources": {
                        "minilm_sha256": encoder.minilm_sha256,
                        "tokenizer": encoder.tokenizer_hashes(),
                        "head_state_sha256": encoder.head_provenance.state_sha256,
                        "weights_file_sha256": encoder.head_provenance.file_sha256,
                        "demo_weights": encoder.head_provenance.kind == "demo",
                    },
                },
            )

        steps.run("contract, tokenizer, graph signatures, self-goldens, manifest", support_files)
    return final


def build_personality_bundle(
    final: Path,
    personality: LoadedPersonality,
    encoder: LoadedEncoder,
    corpus_embeddings: np.ndarray,
    texts: list[str],
    options: BuildOptions,
) -> Path:
    contract = PERSONALITY_V1
    tokens = load_tokens(options.tokens)
    artifacts = _selected(contract, options)
    updatable = contract.training is not None and "coreml" in options.formats
    steps = _Steps(contract.name, 2 + len(artifacts) + 2 * updatable, options.log)
    facts = {
        "weights_provenance": personality.provenance.describe(),
        "encoder_fingerprint": encoder.fingerprint,
        "tokens": ",".join(tokens),
    }
    metadata = resolve_metadata(contract, facts)
    with staged_directory(final) as staging:
        tensors, info = steps.run(
            "golden vectors", lambda: personality_golden(personality, corpus_embeddings, texts)
        )
        write_golden(staging / "golden", tensors, {**info, **_golden_provenance(contract, facts)})
        example = (torch.from_numpy(tensors["embedding"][:2]),)
        for artifact in artifacts:
            steps.run(
                f"{artifact.key} → {artifact.filename}",
                lambda a=artifact: _write_artifact(
                    a, personality.model, contract, example, staging, metadata
                ),
            )
        if updatable:
            _write_updatable(
                steps, staging, personality, contract, corpus_embeddings, example, metadata, facts
            )

        def support_files() -> None:
            _write_common(staging, contract)
            (staging / "personality-tokens.json").write_text(
                json.dumps(tokens, indent=1, ensure_ascii=False) + "\n"
            )
            _write_manifest(
                staging,
                contract,
                facts,
                {
                    "seed": options.seed,
                    "sources": {
                        "personality_state_sha256": personality.provenance.state_sha256,
                        "weights_file_sha256": personality.provenance.file_sha256,
                        "tokens_file_sha256": sha256_file(options.tokens) if options.tokens else None,
                        "demo_weights": personality.provenance.kind == "demo",
                    },
                },
            )

        steps.run("contract, tokens, graph signatures, self-goldens, manifest", support_files)
    return final


def _write_updatable(
    steps: _Steps,
    staging: Path,
    personality: LoadedPersonality,
    contract: Contract,
    corpus_embeddings: np.ndarray,
    example: tuple[torch.Tensor, ...],
    metadata: dict[str, str],
    facts: dict[str, str],
) -> None:
    """The updatable pipeline and the golden personalization step it is checked against."""
    from converters.updatable import build_updatable_pipeline

    training = contract.training
    tensors, info = steps.run(
        "golden personalization step",
        lambda: personalization_golden(personality, training, corpus_embeddings),
    )
    info = {**info, **_golden_provenance(contract, facts)}
    write_golden(staging / "golden", tensors, info, stem=PERSONALIZATION_STEM)
    steps.run(
        f"coreml-updatable → {training.filename}",
        lambda: build_updatable_pipeline(personality.model, contract, example, metadata).save(
            str(staging / training.filename)
        ),
    )


def _golden_provenance(contract: Contract, facts: dict[str, str]) -> dict[str, object]:
    return {
        "contract": contract.name,
        "encoder_fingerprint": facts["encoder_fingerprint"],
        "weights_provenance": facts["weights_provenance"],
        "reference_code_sha256": _REFERENCE_CODE,
    }


def build_bundles(output: Path, models: tuple[str, ...], options: BuildOptions) -> list[Path]:
    """Build the requested bundles under ``output``; the encoder reference is loaded once."""
    if options.tokens is not None:
        load_tokens(options.tokens)  # fail before any conversion
    encoder = load_encoder(options.encoder_weights, seed=options.seed)
    personality = (
        load_personality(options.personality_weights, seed=options.seed)
        if "personality_v1" in models
        else None
    )
    texts = load_corpus()
    start = time.perf_counter()
    golden = encoder_golden(encoder, texts)
    options.log(f"reference encoder on {len(texts)} golden texts ({time.perf_counter() - start:.1f} s)")
    built = []
    if "encoder_v1" in models:
        built.append(build_encoder_bundle(output / "encoder_v1", encoder, golden, options))
    if personality is not None:
        corpus = golden[0]["embedding"]
        built.append(
            build_personality_bundle(output / "personality_v1", personality, encoder, corpus, texts, options)
        )
    return built
