"""text_to_personality: the path the phone runs, tokenizer → encoder_v1 → PersonalityModel.

Bounds on the logits against the fp32 reference (the personality goldens on the encoder's golden
texts), measured on the 80 golden texts (26,000 decisions) at batch 1, 7 and 64, worst of the
Core ML and ONNX combinations; see docs/TOLERANCES.md.
"""

from contracts.encoder_v1 import ENCODER_V1
from contracts.personality_v1 import PERSONALITY_V1
from contracts.pipeline import PipelineContract, PrecisionBounds, Stage, same_precision_combinations
from contracts.schema import Bound, OutputTolerance


def _logits(**limits: tuple[float, float | None]) -> tuple[OutputTolerance, ...]:
    """metric=(limit, measured) for the logits."""
    return (OutputTolerance("logits", tuple(Bound(m, lim, seen) for m, (lim, seen) in limits.items())),)


TEXT_TO_PERSONALITY = PipelineContract(
    name="text_to_personality",
    description="text → encoder_v1 embedding → PersonalityModel logits, as the app and the server run it",
    stages=(
        Stage(ENCODER_V1.name, None, "embedding"),
        Stage(PERSONALITY_V1.name, "embedding", "logits"),
    ),
    combinations=same_precision_combinations(("coreml", "onnx"), 2),
    bounds=(
        # 10x the measured error, as for the models alone.
        PrecisionBounds(
            "fp32",
            _logits(
                max_abs=(1e-5, 1.67e-6),
                sigmoid_max_abs=(3e-6, 3.95e-7),
                flip_rate=(1e-4, 0.0),
                top10_overlap=(0.999, 1.0),
            ),
        ),
        # 3x the measured error (for top-10: 3x the distance from 1, floored at 0.99).
        PrecisionBounds(
            "fp16",
            _logits(
                max_abs=(7e-3, 2.18e-3),
                sigmoid_max_abs=(1.5e-3, 4.52e-4),
                flip_rate=(1e-3, 3.08e-4),
                top10_overlap=(0.99, 0.9988),
            ),
        ),
        # The product budget: at most 0.5 % of the decisions flipped, top-10 overlap at least 0.98;
        # sigmoid error 3x the measured. ONNX int8 needs its two-pass encoder for this: the
        # one-pass-except-V encoder flipped 0.59 % (docs/TOLERANCES.md).
        PrecisionBounds(
            "int8",
            _logits(
                sigmoid_max_abs=(0.03, 0.0104),
                flip_rate=(0.005, 0.00346),
                top10_overlap=(0.98, 0.99),
            ),
        ),
    ),
)
