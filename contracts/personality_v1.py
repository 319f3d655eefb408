"""personality_v1: PersonalityModel, 1536-d embedding → 325 personality-token logits."""

from contracts.encoder_v1 import BATCH, EMBEDDING_DIM
from contracts.schema import (
    ArtifactSpec,
    Bound,
    Contract,
    Dim,
    MetadataField,
    OutputTolerance,
    TensorSpec,
)

VOCAB_SIZE = 325
UPDATABLE = ("projection.weight", "output_bias")

_FP32 = (
    OutputTolerance(
        "logits",
        (Bound("max_abs", 1e-4, measured=None), Bound("min_cosine", 0.99999, measured=None)),
    ),
)

PERSONALITY_V1 = Contract(
    name="personality_v1",
    version="1.0.0",
    description="PersonalityModel: frozen 2-block transformer backbone and an updatable 512->325 head",
    inputs=(
        TensorSpec(
            "embedding",
            "float32",
            (BATCH, Dim("embedding_dim", EMBEDDING_DIM, EMBEDDING_DIM)),
            "L2-normalised encoder_v1 embedding",
            unit_norm=True,
        ),
    ),
    outputs=(
        TensorSpec(
            "logits",
            "float32",
            (BATCH, Dim("vocab_size", VOCAB_SIZE, VOCAB_SIZE)),
            "raw logits in personality-tokens.json order; sigmoid gives probabilities",
        ),
    ),
    metadata=(
        MetadataField("contract_name", "personality_v1"),
        MetadataField("contract_version", "1.0.0"),
        MetadataField("encoder_version", "encoder_v1"),
        MetadataField("embedding_dim", str(EMBEDDING_DIM)),
        MetadataField("vocab_size", str(VOCAB_SIZE)),
        MetadataField("updatable_parameters", ",".join(UPDATABLE)),
        MetadataField("tokens", source="tokens"),
        MetadataField("weights_provenance", source="weights_provenance"),
        MetadataField("encoder_fingerprint", source="encoder_fingerprint"),
    ),
    updatable=UPDATABLE,
    artifacts=(
        ArtifactSpec("coreml", "fp32", "personality_v1.fp32.mlpackage", _FP32),
        ArtifactSpec("onnx", "fp32", "personality_v1.fp32.onnx", _FP32),
    ),
)
