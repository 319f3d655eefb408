"""Contracts: the single definition of what each model's artifacts must honour."""

from contracts.encoder_v1 import ENCODER_V1
from contracts.personality_v1 import PERSONALITY_V1
from contracts.pipeline import PipelineContract
from contracts.schema import (
    CONTRACT_FORMAT,
    MANIFEST_FORMAT,
    ArtifactSpec,
    Bound,
    Contract,
    ContractError,
    Dim,
    MetadataField,
    OutputTolerance,
    TensorSpec,
    resolve_metadata,
)
from contracts.text_to_personality import TEXT_TO_PERSONALITY

REGISTRY: dict[str, Contract] = {c.name: c for c in (ENCODER_V1, PERSONALITY_V1)}
#: Models that run one after another on the device, checked end to end.
PIPELINES: dict[str, PipelineContract] = {p.name: p for p in (TEXT_TO_PERSONALITY,)}


def get_contract(name: str) -> Contract:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ContractError(f"unknown contract {name!r} (known: {', '.join(REGISTRY)})") from None


__all__ = [
    "CONTRACT_FORMAT",
    "MANIFEST_FORMAT",
    "ENCODER_V1",
    "PERSONALITY_V1",
    "REGISTRY",
    "PIPELINES",
    "PipelineContract",
    "ArtifactSpec",
    "Bound",
    "Contract",
    "ContractError",
    "Dim",
    "MetadataField",
    "OutputTolerance",
    "TensorSpec",
    "get_contract",
    "resolve_metadata",
]
