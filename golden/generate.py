"""Compute golden vectors from the PyTorch reference. Deterministic: same inputs, same bits."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import numpy as np
import torch

from contracts.encoder_v1 import EMBEDDING_DIM
from contracts.schema import OnDeviceTraining
from reference.encoder import LoadedEncoder
from reference.personality import LoadedPersonality
from reference.personalization import multi_hot_targets, personalize

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
    values = np.random.default_rng(seed).standard_normal((count, EMBEDDING_DIM))
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


def personalization_golden(
    personality: LoadedPersonality, training: OnDeviceTraining, corpus_embeddings: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The golden on-device update: the first corpus embeddings with seeded multi-hot targets,
    the head before and after ``training.epochs`` epochs, and the updated model's logits."""
    embedding = np.ascontiguousarray(corpus_embeddings[: training.golden_examples], dtype=np.float32)
    target = multi_hot_targets(training, personality.model.output_bias.shape[0])
    result = personalize(personality.model, training, embedding, target)
    with torch.no_grad():
        features = personality.model.features(torch.from_numpy(embedding)).numpy()
    weight, bias = (result.updated[name] for name in training.updatable)
    tensors = {"embedding": embedding, "target": target, "updated_logits": features @ weight.T + bias}
    for stage, params in (("initial", result.initial), ("updated", result.updated)):
        tensors.update({f"{stage}/{name}": value for name, value in params.items()})
    info = {
        "loss": training.loss,
        "optimizer": training.optimizer,
        "learning_rate": training.learning_rate,
        "mini_batch_size": training.mini_batch_size,
        "epochs": training.epochs,
        "steps": len(result.losses),
        "losses": result.losses,
        "changed_parameters": list(result.changed),
        "corpus_rows": training.golden_examples,
        "target_seed": training.golden_seed,
    }
    return tensors, info
