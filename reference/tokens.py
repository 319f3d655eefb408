"""The 325 personality tokens: output order of PersonalityModel's logits."""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from pathlib import Path

from contracts.personality_v1 import VOCAB_SIZE
from reference.errors import ReferenceInputError


def default_tokens_path() -> Path:
    return Path(str(resources.files("reference") / "data" / "personality-tokens.json"))


def validate_tokens(tokens: object, source: str = "token list") -> list[str]:
    """Exactly 325 unique non-empty strings without commas (metadata joins them with ',')."""
    if not isinstance(tokens, list):
        raise ReferenceInputError(f"{source}: expected a JSON array of strings")
    problems = []
    if len(tokens) != VOCAB_SIZE:
        problems.append(f"has {len(tokens)} tokens, expected {VOCAB_SIZE}")
    bad = [i for i, t in enumerate(tokens) if not isinstance(t, str) or not t.strip() or t != t.strip()]
    if bad:
        problems.append(f"empty, non-string or padded tokens at index {bad[:5]}")
    commas = [i for i, t in enumerate(tokens) if isinstance(t, str) and "," in t]
    if commas:
        problems.append(f"tokens with commas at index {commas[:5]}")
    counts = Counter(t for t in tokens if isinstance(t, str))
    dupes = sorted(t for t, n in counts.items() if n > 1)
    if dupes:
        problems.append(f"duplicate tokens {dupes[:5]}")
    if problems:
        raise ReferenceInputError(f"{source}: " + "; ".join(problems))
    return list(tokens)


def load_tokens(path: Path | None = None) -> list[str]:
    path = Path(path) if path else default_tokens_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReferenceInputError(f"{path}: no such token file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReferenceInputError(f"{path}: not valid UTF-8 JSON ({exc})") from None
    return validate_tokens(data, str(path))
