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


def _logit_bounds(**limits: tuple[float, float]) -> tuple[OutputTolerance, ...]:
    """metric=(limit, measured) for the logits output."""
    return (OutputTolerance("logits", tuple(Bound(m, lim, seen) for m, (lim, seen) in limits.items())),)


# Measured on the goldens (80 corpus embeddings + 64 random unit-norm inputs, 46,800 decisions)
# at batch 1, 7 and 64; see docs/TOLERANCES.md. Errors get about 10x (fp32) or 3x (fp16, int8)
# of the measured value; int8 flips and top-10 never looser than the targets 0.5 % and 0.95.
_FP32_COREML = _logit_bounds(
    max_abs=(1e-5, 1.16e-6),
    sigmoid_max_abs=(3e-6, 2.87e-7),
    flip_rate=(1e-4, 0.0),
    top10_overlap=(0.999, 1.0),
)
_FP32_ONNX = _logit_bounds(
    max_abs=(1e-5, 1.18e-6),
    sigmoid_max_abs=(3e-6, 2.92e-7),
    flip_rate=(1e-4, 0.0),
    top10_overlap=(0.999, 1.0),
)
_FP16_COREML = _logit_bounds(
    max_abs=(5e-3, 1.66e-3),
    sigmoid_max_abs=(1e-3, 3.25e-4),
    flip_rate=(1e-3, 1.71e-4),
    top10_overlap=(0.99, 1.0),
)
_FP16_ONNX = _logit_bounds(
    max_abs=(4e-3, 1.17e-3),
    sigmoid_max_abs=(8e-4, 2.63e-4),
    flip_rate=(1e-3, 1.28e-4),
    top10_overlap=(0.99, 1.0),
)
_INT8_COREML = _logit_bounds(
    max_abs=(0.036, 0.0119),
    sigmoid_max_abs=(9e-3, 2.97e-3),
    flip_rate=(0.005, 1.90e-3),
    top10_overlap=(0.99, 0.9972),
)
_INT8_ONNX = _logit_bounds(
    max_abs=(0.036, 0.0121),
    sigmoid_max_abs=(9e-3, 2.94e-3),
    flip_rate=(0.005, 1.65e-3),
    top10_overlap=(0.99, 0.9965),
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
        ArtifactSpec("coreml", "fp32", "personality_v1.fp32.mlpackage", _FP32_COREML),
        ArtifactSpec("coreml", "fp16", "personality_v1.fp16.mlpackage", _FP16_COREML, max_size_ratio=0.55),
        ArtifactSpec(
            "coreml",
            "int8",
            "personality_v1.int8.mlpackage",
            _INT8_COREML,
            max_size_ratio=0.30,
            compute_precision="fp16",
        ),
        ArtifactSpec("onnx", "fp32", "personality_v1.fp32.onnx", _FP32_ONNX),
        ArtifactSpec("onnx", "fp16", "personality_v1.fp16.onnx", _FP16_ONNX, max_size_ratio=0.55),
        ArtifactSpec("onnx", "int8", "personality_v1.int8.onnx", _INT8_ONNX, max_size_ratio=0.35),
    ),
)
