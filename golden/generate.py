"""Compute golden vectors from the PyTorch reference. Deterministic: same inputs, same bits."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import numpy as np
import torch

from reference.encoder import LoadedEncoder
from reference.personality import LoadedPersonality

#: Random unit-norm 1536-d inputs for PersonalityModel alone, beside the corpus embeddings.
RANDOM_EMBEDDINGS = 64
RANDOM_SEED = 20240601


def load_corpus() -> list[str]:
    data = json.loads((resources.files("golden") / "data" / "corpus.json").read_text(encoding="utf-8"))
    return list(data["texts"])


def encoder_golden(encoder: LoadedEncoder, texts: list[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    batch = encoder.tokenize(texts)
    with torch.no_grad():
        sentence_embedding, embedding = encoder.model(batch["input_ids"], batch["attention_mask"])
    tensors = {
        "input_ids": batch["input_ids"].numpy(),
        "attention_mask": batch["attention_mask"].numpy(),
        "sentence_embedding": sentence_embedding.numpy(),
        "embedding": embedding.numpy(),
    }
    info = {"texts": texts, "rows": {"corpus": len(texts)}}
    return tensors, info


def random_unit_embeddings(count: int = RANDOM_EMBEDDINGS, seed: int = RANDOM_SEED) -> np.ndarray:
    values = np.random.default_rng(seed).standard_normal((count, 1536))
    return (values / np.linalg.norm(values, axis=1, keepdims=True)).astype(np.float32)


def personality_golden(
    personality: LoadedPersonality, corpus_embeddings: np.ndarray, texts: list[str]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Logits on the encoder's corpus embeddings, then on random unit-norm inputs."""
    embedding = np.concatenate([corpus_embeddings, random_unit_embeddings()]).astype(np.float32)
    with torch.no_grad():
        logits = personality.model(torch.from_numpy(embedding)).numpy()
    info = {
        "texts": texts,
        "rows": {"corpus": len(corpus_embeddings), "random_unit_norm": RANDOM_EMBEDDINGS},
        "random_seed": RANDOM_SEED,
    }
    return {"embedding": embedding, "logits": logits}, info
