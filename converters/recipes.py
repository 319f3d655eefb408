"""How each model is built: one recipe per contract, read by ``converters.bundle.build_bundle``.

A recipe loads the model's reference, computes its goldens and names the files a bundle ships
beside the artifacts. A model that consumes another's output (``Contract.consumes``) receives
that model's prepared reference. A third model needs a contract and a recipe here, nothing else.

Quantisation choices, measured in docs/QUANTIZATION.md:
- encoder: quantising every MiniLM weight per-channel gives cos_min 0.9963 on the golden corpus;
  keeping the six FFN output projections (``output.dense``) and the 384→1536 projection in float
  lifts it above 0.999. ONNX int8 uses the two-pass encoder quantizer.
- PersonalityModel: every weight in 8-bit; its own ONNX int8 quantizer.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contracts import ENCODER_V1, PERSONALITY_V1, Contract, resolve_metadata
from contracts.hashing import sha256_file
from converters import onnx_quantize
from golden.generate import encoder_golden, load_corpus, personality_golden, personalization_golden
from golden.store import PERSONALIZATION_STEM, write_golden
from golden.tokenizer_conformance import write_fixture
from reference.encoder import TOKENIZER_FILES, LoadedEncoder, load_encoder
from reference.personality import LoadedPersonality, load_personality
from reference.tokens import load_tokens
from reference.version import reference_code_sha256

Tensors = dict[str, np.ndarray]
#: Hashed once, when the reference code is imported: goldens and manifest record the code that ran.
REFERENCE_CODE = reference_code_sha256()


@dataclass
class Inputs:
    """What the user gives a build: weight files by contract name, the tokens file, the seed."""

    weights: dict[str, Path] = field(default_factory=dict)
    tokens: Path | None = None
    seed: int = 0


@dataclass
class Prepared:
    """A model's reference, loaded, with everything its bundle is built from."""

    module: torch.nn.Module
    facts: dict[str, str]  # bundle facts: metadata sources and golden provenance
    golden: tuple[Tensors, dict[str, Any]]
    example: tuple[torch.Tensor, ...]  # conversion example inputs
    sources: dict[str, Any]  # the manifest's record of what was built from
    support: Callable[[Path], None]  # writes the files shipped beside the artifacts
    support_label: str
    #: Extra goldens and models, each (label, writer(staging)); run after the artifacts.
    extras: tuple[tuple[str, Callable[[Path], None]], ...] = ()


@dataclass(frozen=True)
class Recipe:
    contract: Contract
    #: Loads the reference and checks the user's files for it; cheap, run for every model first.
    load: Callable[[Inputs], Any]
    #: Goldens and bundle facts: (loaded reference, inputs, prepared upstream models, formats).
    prepare: Callable[[Any, Inputs, dict[str, Prepared], tuple[str, ...]], Prepared]
    onnx_int8: Callable[[Path, Path], object]  # quantize(fp32_path, out_path)
    #: Weights kept in float when the Core ML weights go to 8-bit.
    coreml_int8_float_weights: Callable[[torch.nn.Module], tuple[np.ndarray, ...]] = lambda module: ()


def _load_encoder(inputs: Inputs) -> LoadedEncoder:
    return load_encoder(inputs.weights.get(ENCODER_V1.name), seed=inputs.seed)


def _prepare_encoder(
    encoder: LoadedEncoder, inputs: Inputs, upstream: dict[str, Prepared], formats: tuple[str, ...]
) -> Prepared:
    facts = {
        "weights_provenance": encoder.describe_provenance(),
        "encoder_fingerprint": encoder.fingerprint,
    }

    tokenizer = ENCODER_V1.tokenizer_spec

    def support(staging: Path) -> None:
        (staging / "tokenizer").mkdir()
        for name in TOKENIZER_FILES:
            shutil.copyfile(encoder.tokenizer_dir / name, staging / "tokenizer" / name)
        if tokenizer.conformance:
            write_fixture(encoder.tokenizer_dir, staging / tokenizer.conformance, tokenizer.max_length)

    return Prepared(
        module=encoder.model,
        facts=facts,
        golden=encoder_golden(encoder, load_corpus()),
        example=tuple(encoder.tokenize(["a short text", "a somewhat longer example text"]).values()),
        sources={
            "minilm_sha256": encoder.minilm_sha256,
            "tokenizer": encoder.tokenizer_hashes(),
            "head_state_sha256": encoder.head_provenance.state_sha256,
            "weights_file_sha256": encoder.head_provenance.file_sha256,
            "demo_weights": encoder.head_provenance.kind == "demo",
        },
        support=support,
        support_label="tokenizer, tokenizer conformance fixture",
    )


def _encoder_float_weights(module: torch.nn.Module) -> tuple[np.ndarray, ...]:
    weights = [layer.output.dense.weight for layer in module.bert.encoder.layer]
    weights.append(module.head.projection.weight)
    return tuple(w.detach().numpy() for w in weights)


def _load_personality(inputs: Inputs) -> tuple[LoadedPersonality, list[str]]:
    tokens = load_tokens(inputs.tokens)
    return load_personality(inputs.weights.get(PERSONALITY_V1.name), seed=inputs.seed), tokens


def _prepare_personality(
    loaded: tuple[LoadedPersonality, list[str]],
    inputs: Inputs,
    upstream: dict[str, Prepared],
    formats: tuple[str, ...],
) -> Prepared:
    contract = PERSONALITY_V1
    personality, tokens = loaded
    encoder = upstream[contract.consumes or ""]
    encoder_tensors, encoder_info = encoder.golden
    consumed = contract.inputs[0].name
    corpus, texts = encoder_tensors[consumed], list(encoder_info["texts"])
    facts = {
        "weights_provenance": personality.provenance.describe(),
        "encoder_fingerprint": encoder.facts["encoder_fingerprint"],
        "tokens": ",".join(tokens),
    }
    golden = personality_golden(personality, corpus, texts)

    def support(staging: Path) -> None:
        text = json.dumps(tokens, indent=1, ensure_ascii=False) + "\n"
        (staging / "personality-tokens.json").write_text(text)

    example = (torch.from_numpy(golden[0][consumed][:2]),)
    extras: tuple[tuple[str, Callable[[Path], None]], ...] = ()
    training = contract.training
    if training is not None and "coreml" in formats:

        def personalization(staging: Path) -> None:
            tensors, info = personalization_golden(personality, training, corpus)
            info = {**info, **golden_provenance(contract, facts)}
            write_golden(staging / "golden", tensors, info, stem=PERSONALIZATION_STEM)

        def updatable(staging: Path) -> None:
            from converters.updatable import build_updatable_pipeline

            metadata = resolve_metadata(contract, facts)
            model = build_updatable_pipeline(personality.model, contract, example, metadata)
            model.save(str(staging / training.filename))

        extras = (
            ("golden personalization step", personalization),
            (f"{training.key} → {training.filename}", updatable),
        )
    return Prepared(
        module=personality.model,
        facts=facts,
        golden=golden,
        example=example,
        sources={
            "personality_state_sha256": personality.provenance.state_sha256,
            "weights_file_sha256": personality.provenance.file_sha256,
            "tokens_file_sha256": sha256_file(inputs.tokens) if inputs.tokens else None,
            "demo_weights": personality.provenance.kind == "demo",
        },
        support=support,
        support_label="tokens",
        extras=extras,
    )


def golden_provenance(contract: Contract, facts: dict[str, str]) -> dict[str, object]:
    return {
        "contract": contract.name,
        "encoder_fingerprint": facts["encoder_fingerprint"],
        "weights_provenance": facts["weights_provenance"],
        "reference_code_sha256": REFERENCE_CODE,
    }


RECIPES: dict[str, Recipe] = {
    recipe.contract.name: recipe
    for recipe in (
        Recipe(
            ENCODER_V1,
            _load_encoder,
            _prepare_encoder,
            onnx_quantize.quantize_encoder_int8,
            coreml_int8_float_weights=_encoder_float_weights,
        ),
        Recipe(
            PERSONALITY_V1, _load_personality, _prepare_personality, onnx_quantize.quantize_personality_int8
        ),
    )
}


def build_order(models: tuple[str, ...]) -> list[str]:
    """The requested models and every model they consume, each after what it consumes."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name not in RECIPES:
            raise ValueError(f"no recipe for {name!r} (known: {', '.join(RECIPES)})")
        consumes = RECIPES[name].contract.consumes
        if consumes:
            visit(consumes)
        order.append(name)

    for name in models:
        visit(name)
    return order
