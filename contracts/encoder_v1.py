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
EMBEDDING_DIM = 1536

# fp32 bounds: measured worst case over the goldens at batch 1, 7 and 64
# (see docs/TOLERANCES.md), times a margin of about 10.
_FP32 = (
    OutputTolerance(
        "sentence_embedding",
        (Bound("max_abs", 1e-5, measured=None), Bound("min_cosine", 0.99999, measured=None)),
    ),
    OutputTolerance(
        "embedding",
        (Bound("max_abs", 1e-5, measured=None), Bound("min_cosine", 0.99999, measured=None)),
    ),
)

ENCODER_V1 = Contract(
    name="encoder_v1",
    version="1.0.0",
    description=(
        "all-MiniLM-L6-v2 mean pooling, L2, LayerNorm(384), Linear 384->1536, L2: "
        "the embedding space PersonalityModel is trained on"
    ),
    inputs=(
        TensorSpec("input_ids", "int32", (BATCH, SEQUENCE), "WordPiece ids, [CLS] ... [SEP], 0-padded"),
        TensorSpec("attention_mask", "int32", (BATCH, SEQUENCE), "1 for tokens, 0 for padding"),
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
        ArtifactSpec("coreml", "fp32", "encoder_v1.fp32.mlpackage", _FP32),
        ArtifactSpec("onnx", "fp32", "encoder_v1.fp32.onnx", _FP32),
    ),
)
