"""Strict safetensors loading and deterministic demo weights."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from contracts.hashing import sha256_file
from reference.errors import ReferenceInputError


@dataclass(frozen=True)
class WeightsProvenance:
    """Where a module's weights came from; recorded in bundle metadata and manifest."""

    kind: str  # "demo" | "file"
    state_sha256: str  # hash of the canonical safetensors serialisation of the state dict
    seed: int | None = None
    file_sha256: str | None = None

    def describe(self) -> str:
        if self.kind == "demo":
            return f"demo weights (seed {self.seed}, not trained) sha256:{self.state_sha256}"
        return f"file sha256:{self.file_sha256}"


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    import hashlib

    canonical = {k: state[k].detach().contiguous().to(torch.float32) for k in sorted(state)}
    return hashlib.sha256(save(canonical)).hexdigest()


def demo_state_dict(module: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """Seeded weights from numpy's PCG64, stable across torch versions and platforms.

    Linear layers get PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)); LayerNorms get
    ones and zeros; free parameters (output_bias) get N(0, 0.5) so logits spread around 0.
    """
    state: dict[str, torch.Tensor] = {}
    for module_name, sub in module.named_modules():
        for param_name, param in sub.named_parameters(recurse=False):
            name = f"{module_name}.{param_name}" if module_name else param_name
            rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
            shape = tuple(param.shape)
            if isinstance(sub, torch.nn.LayerNorm):
                values = np.ones(shape) if param_name == "weight" else np.zeros(shape)
            elif isinstance(sub, torch.nn.Linear):
                bound = 1.0 / np.sqrt(sub.in_features)
                values = rng.uniform(-bound, bound, size=shape)
            else:
                values = rng.normal(0.0, 0.5, size=shape)
            state[name] = torch.from_numpy(values.astype(np.float32))
    return state


def load_strict(module: torch.nn.Module, path: Path, what: str) -> WeightsProvenance:
    """Load ``path`` into ``module``; any missing, unexpected or mis-shaped key is an error."""
    path = Path(path)
    if not path.is_file():
        raise ReferenceInputError(f"{path}: no such weights file")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ReferenceInputError(f"{path}: not a readable safetensors file ({exc})") from None
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = [
        f"{k} {tuple(state[k].shape)} != {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = [
        f"{label} [{', '.join(keys)}]"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
        if keys
    ]
    if problems:
        raise ReferenceInputError(f"{path}: weights do not fit {what}: " + "; ".join(problems))
    bad = [k for k, v in state.items() if not v.is_floating_point() or not torch.isfinite(v).all()]
    if bad:
        raise ReferenceInputError(f"{path}: non-float or non-finite values in [{', '.join(sorted(bad))}]")
    state = {k: v.to(torch.float32) for k, v in state.items()}
    module.load_state_dict(state, strict=True)
    return WeightsProvenance("file", state_sha256(state), file_sha256=sha256_file(path))


def load_or_demo(module: torch.nn.Module, path: Path | None, seed: int, what: str) -> WeightsProvenance:
    if path is not None:
        return load_strict(module, path, what)
    state = demo_state_dict(module, seed)
    module.load_state_dict(state, strict=True)
    return WeightsProvenance("demo", state_sha256(state), seed=seed)
