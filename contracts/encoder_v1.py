"""encoder_v1: MiniLM-L6 → mean pool → L2 → LayerNorm → Linear 384→1536 → L2."""

from contracts.schema import (
    ArtifactSpec,
    Bound,
    Contract,
    Dim,
    MetadataField,
    OutputTolerance,
    TensorSpec,
)

BATCH = Dim("batch", 1, 64)
SEQUENCE = Dim("sequence", 1, 256)
MINILM_DIM = 384
MINILM_VOCAB = 30522  # WordPiece vocabulary of all-MiniLM-L6-v2 (tokenizer/vocab.txt)
EMBEDDING_DIM = 1536


def _bounds(*per_output: tuple[str, float, float, float, float]) -> tuple[OutputTolerance, ...]:
    """(output, max_abs limit, measured, min_cosine limit, measured) per output."""
    return tuple(
        OutputTolerance(
            name, (Bound("max_abs", abs_limit, abs_seen), Bound("min_cosine", cos_limit, cos_seen))
        )
        for name, abs_limit, abs_seen, cos_limit, cos_seen in per_output
    )


# Limits come from the errors measured on the goldens at batch 1, 7 and 64 (docs/TOLERANCES.md):
# about 10x the measured error for fp32, 3x for fp16 and int8 (for cosine: 3x the distance
# from 1), never looser than the targets fp16 cos >= 0.9999, Core ML int8 >= 0.998, ONNX int8 >= 0.995.
_FP32_COREML = _bounds(
    ("sentence_embedding", 3e-6, 2.68e-7, 0.999999, 0.9999999999988),
    ("embedding", 3e-6, 1.68e-7, 0.999999, 0.9999999999986),
)
_FP32_ONNX = _bounds(
    ("sentence_embedding", 3e-6, 3.06e-7, 0.999999, 0.9999999999989),
    ("embedding", 3e-6, 1.55e-7, 0.999999, 0.9999999999987),
)
_FP16_COREML = _bounds(
    ("sentence_embedding", 1.2e-3, 3.97e-4, 0.99999, 0.9999979),
    ("embedding", 7e-4, 2.08e-4, 0.99999, 0.9999977),
)
_FP16_ONNX = _bounds(
    ("sentence_embedding", 1e-3, 3.43e-4, 0.99999, 0.9999983),
    ("embedding", 5e-4, 1.69e-4, 0.99999, 0.9999983),
)
_INT8_COREML = _bounds(
    ("sentence_embedding", 0.025, 7.62e-3, 0.998, 0.99906),
    ("embedding", 0.015, 4.34e-3, 0.998, 0.99901),
)
# Measured with the two-pass-everywhere recipe (docs/QUANTIZATION.md); the limits were set for the
# one-pass-except-V recipe (0.0141 / 0.99718 and 7.03e-3 / 0.99708) and are kept.
_INT8_ONNX = _bounds(
    ("sentence_embedding", 0.045, 6.83e-3, 0.995, 0.99904),
    ("embedding", 0.025, 3.97e-3, 0.995, 0.99895),
)

ENCODER_V1 = Contract(
    name="encoder_v1",
    version="1.0.0",
    description=(
        "all-MiniLM-L6-v2 mean pooling, L2, LayerNorm(384), Linear 384->1536, L2: "
        "the embedding space PersonalityModel is trained on"
    ),
    inputs=(
        TensorSpec(
            "input_ids",
            "int32",
            (BATCH, SEQUENCE),
            "WordPiece ids, [CLS] ... [SEP], 0-padded",
            values=(0, MINILM_VOCAB - 1),
        ),
        TensorSpec(
            "attention_mask", "int32", (BATCH, SEQUENCE), "1 for tokens, 0 for padding", values=(0, 1)
        ),
    ),
    outputs=(
        TensorSpec(
            "sentence_embedding",
            "float32",
            (BATCH, Dim("minilm_dim", MINILM_DIM, MINILM_DIM)),
            "L2-normalised mean-pooled MiniLM embedding (what sentence-transformers returns)",
            unit_norm=True,
        ),
        TensorSpec(
            "embedding",
            "float32",
            (BATCH, Dim("embedding_dim", EMBEDDING_DIM, EMBEDDING_DIM)),
            "L2-normalised 1536-d embedding consumed by PersonalityModel",
            unit_norm=True,
        ),
    ),
    metadata=(
        MetadataField("contract_name", "encoder_v1"),
        MetadataField("contract_version", "1.0.0"),
        MetadataField("encoder_version", "encoder_v1"),
        MetadataField("embedding_dim", str(EMBEDDING_DIM)),
        MetadataField("max_sequence_length", str(SEQUENCE.upper)),
        MetadataField("weights_provenance", source="weights_provenance"),
        MetadataField("encoder_fingerprint", source="encoder_fingerprint"),
    ),
    artifacts=(
        ArtifactSpec("coreml", "fp32", "encoder_v1.fp32.mlpackage", _FP32_COREML),
        ArtifactSpec("coreml", "fp16", "encoder_v1.fp16.mlpackage", _FP16_COREML, max_size_ratio=0.55),
        ArtifactSpec(
            "coreml",
            "int8",
            "encoder_v1.int8.mlpackage",
            _INT8_COREML,
            max_size_ratio=0.30,
            compute_precision="fp16",
        ),
        ArtifactSpec("onnx", "fp32", "encoder_v1.fp32.onnx", _FP32_ONNX),
        ArtifactSpec("onnx", "fp16", "encoder_v1.fp16.onnx", _FP16_ONNX, max_size_ratio=0.55),
        ArtifactSpec("onnx", "int8", "encoder_v1.int8.onnx", _INT8_ONNX, max_size_ratio=0.70),
    ),
)
