"""PyTorch reference models: the source of truth for converters and goldens."""

from reference.encoder import EncoderV1, ProjectionHead, load_encoder
from reference.errors import ReferenceInputError
from reference.personality import PersonalityModel, load_personality
from reference.tokens import default_tokens_path, load_tokens

__all__ = [
    "EncoderV1",
    "PersonalityModel",
    "ProjectionHead",
    "ReferenceInputError",
    "default_tokens_path",
    "load_encoder",
    "load_personality",
    "load_tokens",
]
