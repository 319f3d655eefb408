"""``build-contract``: build the default bundles (or one of them) from the PyTorch reference."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from contracts.environment import quiet_libraries

MODELS = ("encoder_v1", "personality_v1")
PRECISIONS = ("fp32", "fp16", "int8")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="build-contract",
        description="Convert the PyTorch reference models into contract bundles (Core ML + ONNX + goldens).",
    )
    parser.add_argument("output", nargs="?", default="artifacts", type=Path, help="directory for the bundles")
    parser.add_argument("--model", choices=(*MODELS, "all"), default="all", help="which bundle to build")
    parser.add_argument(
        "--encoder-weights", type=Path, help="safetensors for the encoder LayerNorm + projection"
    )
    parser.add_argument("--personality-weights", type=Path, help="safetensors for PersonalityModel")
    parser.add_argument(
        "--tokens", type=Path, help="personality-tokens.json (325 unique tokens, output order)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the demo weights used without --*-weights"
    )
    parser.add_argument(
        "--precisions", default=",".join(PRECISIONS), help="comma-separated subset of fp32,fp16,int8"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    precisions = tuple(p.strip() for p in args.precisions.split(",") if p.strip())
    unknown = sorted(set(precisions) - set(PRECISIONS))
    if unknown or not precisions:
        print(f"build-contract: error: unknown precisions {unknown or '(none)'}", file=sys.stderr)
        return 2
    quiet_libraries()
    from converters.bundle import BuildOptions, build_bundles
    from reference.errors import ReferenceInputError

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    options = BuildOptions(
        encoder_weights=args.encoder_weights,
        personality_weights=args.personality_weights,
        tokens=args.tokens,
        seed=args.seed,
        precisions=precisions,
        log=log,
    )
    models = MODELS if args.model == "all" else (args.model,)
    start = time.perf_counter()
    try:
        built = build_bundles(args.output, models, options)
    except ReferenceInputError as exc:
        print(f"build-contract: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("build-contract: interrupted; existing bundles left unchanged", file=sys.stderr)
        return 130
    for path in built:
        print(f"built {path}")
    log(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
