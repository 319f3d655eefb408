"""Encode texts with an encoder bundle: the bundle's own tokenizer and one of its ONNX artifacts.

    from inference.encode import encode_texts
    embeddings = encode_texts(Path("artifacts/encoder_v1"), ["a text", "another text"])

Texts are tokenized as the reference does (``reference/encoder.py``: WordPiece with [CLS] and
[SEP], truncated to the contract's 256 tokens), sorted by token count, and run in batches of at
most ``batch_size`` rows, cut where padding costs least (``verify.tokenization.plan_batches``) and
padded only to their own longest row; the embeddings come back in input order. Only numpy,
``tokenizers`` and onnxruntime are needed: no torch, no transformers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contracts import ENCODER_V1
from verify.backends.integer_kernels import FASTEST, PORTABLE
from verify.backends.runners import OnnxRunner
from verify.tokenization import DEFAULT_BATCH, TokenBatch, load_tokenizer, token_batches, token_ids

__all__ = ["DEFAULT_BATCH", "BundleEncoder", "encode_texts"]


class BundleEncoder:
    """One tokenizer and one onnxruntime session for an encoder bundle, loaded once. int8 runs on
    u8s8 kernels where they are exact (``integer_kernels``: :class:`OnnxRunner`).

    ``batches`` (tokenize, sort, pad) and ``run`` (the model) are separate so that a benchmark
    can time each; ``encode`` is both.
    """

    def __init__(
        self, bundle: Path, artifact: str = "onnx-fp32", threads: int = 0, integer_kernels: str = FASTEST
    ) -> None:
        spec = ENCODER_V1.artifact(artifact)
        if spec.format != "onnx":
            raise ValueError(f"{artifact}: encode_texts runs ONNX artifacts only")
        self.bundle = Path(bundle)
        self.tokenizer = load_tokenizer(self.bundle)
        kernels = integer_kernels if spec.precision == "int8" else PORTABLE  # nothing to rewrite
        self.runner = OnnxRunner(ENCODER_V1, self.bundle / spec.filename, threads, kernels)

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        return token_ids(self.tokenizer, texts)

    def batches(self, texts: list[str], batch_size: int = DEFAULT_BATCH) -> list[TokenBatch]:
        """(input rows, inputs) per batch: rows sorted by token count, cut where padding costs least,
        each batch padded to its longest."""
        return token_batches(self.tokenizer, texts, batch_size)

    def run(self, batches: list[TokenBatch], output: str = "embedding") -> np.ndarray:
        """The model on prepared batches; rows of ``output`` in input order."""
        count = sum(len(rows) for rows, _ in batches)
        width = ENCODER_V1.output(output).shape[1].upper
        result = np.zeros((count, width), dtype=np.float32)
        for rows, inputs in batches:
            result[rows] = self.runner.run(inputs)[output]
        return result

    def encode(
        self, texts: list[str], batch_size: int = DEFAULT_BATCH, output: str = "embedding"
    ) -> np.ndarray:
        return self.run(self.batches(texts, batch_size), output)


def encode_texts(
    bundle: Path, texts: list[str], artifact: str = "onnx-fp32", batch_size: int = DEFAULT_BATCH
) -> np.ndarray:
    """The 1536-d ``embedding`` of each text, in input order, float32 of shape (len(texts), 1536).

    ``bundle`` is an encoder_v1 bundle directory, ``artifact`` one of its ONNX artifacts
    (onnx-fp32, onnx-fp16, onnx-int8); ``batch_size`` must lie in the contract's batch range.
    """
    return BundleEncoder(bundle, artifact).encode(texts, batch_size)
