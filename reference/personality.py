"""PersonalityModel: 1536 → 325 logits through a frozen 2-block pre-LN transformer."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from contracts.encoder_v1 import EMBEDDING_DIM
from contracts.personality_v1 import HIDDEN, VOCAB_SIZE
from reference.weights import WeightsProvenance, load_or_demo

HEADS = 8
HEAD_DIM = 64
FFN = 2048
DROPOUT = 0.1


class SelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj = nn.Linear(HIDDEN, HIDDEN)
        self.k_proj = nn.Linear(HIDDEN, HIDDEN)
        self.v_proj = nn.Linear(HIDDEN, HIDDEN)
        self.out_proj = nn.Linear(HIDDEN, HIDDEN)
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, length, HEADS, HEAD_DIM).transpose(1, 2)

        q, k, v = heads(self.q_proj(x)), heads(self.k_proj(x)), heads(self.v_proj(x))
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(HEAD_DIM)
        attended = torch.matmul(self.dropout(scores.softmax(dim=-1)), v)
        return self.out_proj(attended.transpose(1, 2).reshape(batch, length, HIDDEN))


class EncoderBlock(nn.Module):
    """Pre-LN block: x + drop(attn(LN(x))), then x + drop(FFN(LN(x)))."""

    def __init__(self) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(HIDDEN)
        self.self_attn = SelfAttention()
        self.norm2 = nn.LayerNorm(HIDDEN)
        self.linear1 = nn.Linear(HIDDEN, FFN)
        self.linear2 = nn.Linear(FFN, HIDDEN)
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.self_attn(self.norm1(x)))
        ffn = self.linear2(self.dropout(F.gelu(self.linear1(self.norm2(x)))))
        return x + self.dropout(ffn)


class PersonalityModel(nn.Module):
    """The embedding is one token: attention runs over a sequence of length 1, as exported."""

    def __init__(self) -> None:
        super().__init__()
        self.input_projection = nn.Linear(EMBEDDING_DIM, HIDDEN)
        self.encoder_layers = nn.ModuleList([EncoderBlock() for _ in range(2)])
        self.projection = nn.Linear(HIDDEN, VOCAB_SIZE, bias=False)
        self.output_bias = nn.Parameter(torch.zeros(VOCAB_SIZE))

    def features(self, embedding: torch.Tensor) -> torch.Tensor:
        """The frozen backbone: (B, 1536) → (B, 512)."""
        x = self.input_projection(embedding).unsqueeze(1)
        for layer in self.encoder_layers:
            x = layer(x)
        return x.squeeze(1)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.projection(self.features(embedding)) + self.output_bias


@dataclass
class LoadedPersonality:
    model: PersonalityModel
    provenance: WeightsProvenance


def load_personality(weights: Path | None = None, seed: int = 0) -> LoadedPersonality:
    model = PersonalityModel()
    provenance = load_or_demo(model, weights, seed, "PersonalityModel")
    return LoadedPersonality(model.eval(), provenance)
