"""Write the demo project's "trained" weight files: seeded, with the reference models' parameter
names, so that the project file's sha256 pins match byte for byte.

    python make_weights.py            # writes weights/ beside this file
    python make_weights.py --seed 8   # other weights: the pins then no longer match (exit 2)

A team replaces these files with its trained ones (same names and shapes; build-contract says
which key is missing, unexpected or mis-shaped) and pins their sha256 in coreml-contract.toml.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors.torch import save_file

from contracts.hashing import sha256_file
from reference.encoder import ProjectionHead
from reference.personality import PersonalityModel
from reference.tokens import default_tokens_path
from reference.weights import demo_state_dict

HERE = Path(__file__).resolve().parent


def write_weights(directory: Path, seed: int) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "encoder-head.safetensors": ProjectionHead(),
        "personality.safetensors": PersonalityModel(),
    }
    written = {}
    for name, module in files.items():
        save_file(demo_state_dict(module, seed), str(directory / name))
        written[name] = directory / name
    tokens = directory / "personality-tokens.json"
    shutil.copyfile(default_tokens_path(), tokens)
    written[tokens.name] = tokens
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=HERE / "weights")
    args = parser.parse_args()
    for name, path in write_weights(args.out, args.seed).items():
        print(json.dumps({"file": name, "sha256": sha256_file(path)}))


if __name__ == "__main__":
    main()
