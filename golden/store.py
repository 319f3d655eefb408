"""Golden files: ``golden/golden.safetensors`` (tensors) + ``golden/golden.json`` (texts, provenance).

The personality bundle also has ``golden/personalization.{safetensors,json}``: the golden
on-device update (training set, head weights before and after).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

GOLDEN_FORMAT = 1
GOLDEN_STEM = "golden"
PERSONALIZATION_STEM = "personalization"
TENSORS_FILE = f"{GOLDEN_STEM}.safetensors"
INFO_FILE = f"{GOLDEN_STEM}.json"


class GoldenError(ValueError):
    """Unreadable or inconsistent golden files."""


@dataclass(frozen=True)
class Golden:
    tensors: dict[str, np.ndarray]
    info: dict[str, Any]

    @property
    def rows(self) -> int:
        return next(iter(self.tensors.values())).shape[0]

    def batch(self, names: list[str], rows: np.ndarray) -> dict[str, np.ndarray]:
        """The given rows of ``names``, with padding beyond the longest mask trimmed."""
        picked = {name: self.tensors[name][rows] for name in names}
        mask = picked.get("attention_mask")
        if mask is not None:
            length = max(int(mask.sum(axis=1).max()), 1)
            picked = {
                k: (v[:, :length] if v.ndim == 2 and k in _SEQUENCE_INPUTS else v) for k, v in picked.items()
            }
        return picked


_SEQUENCE_INPUTS = ("input_ids", "attention_mask")


def write_golden(
    directory: Path, tensors: dict[str, np.ndarray], info: dict[str, Any], stem: str = GOLDEN_STEM
) -> None:
    from safetensors.numpy import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: np.ascontiguousarray(tensors[k]) for k in sorted(tensors)}, str(directory / f"{stem}.safetensors")
    )
    info = {"golden_format": GOLDEN_FORMAT, **info}
    text = json.dumps(info, indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    (directory / f"{stem}.json").write_text(text)


def read_golden(directory: Path, stem: str = GOLDEN_STEM, same_rows: bool = True) -> Golden:
    """Read and sanity-check ``stem``.safetensors/.json; ``same_rows``: one row count for all."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        info = json.loads((directory / f"{stem}.json").read_text(encoding="utf-8"))
        tensors = load_file(str(directory / f"{stem}.safetensors"))
    except FileNotFoundError as exc:
        raise GoldenError(f"golden file missing: {exc.filename}") from None
    except RecursionError:
        raise GoldenError(f"{stem}.json is nested too deeply") from None
    except (json.JSONDecodeError, UnicodeDecodeError, SafetensorError, OSError, ValueError) as exc:
        raise GoldenError(f"golden files unreadable: {exc}") from None
    if not isinstance(info, dict) or info.get("golden_format") != GOLDEN_FORMAT:
        raise GoldenError(f"{stem}.json golden_format is not {GOLDEN_FORMAT}")
    if not tensors or (same_rows and len({t.shape[0] for t in tensors.values()}) != 1):
        raise GoldenError(f"{stem} tensors are empty or disagree on the number of rows")
    return Golden(tensors, info)
