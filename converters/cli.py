"""``build-contract``: build the default bundles (or one of them) from the PyTorch reference."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from contracts.environment import quiet_libraries

MODELS = ("encoder_v1", "personality_v1")
PRECISIONS = ("fp32", "fp16", "int8")
FORMATS = ("coreml", "onnx")


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
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated subset of coreml,onnx")
    return parser


def _subset(value: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    chosen = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = sorted(set(chosen) - set(allowed))
    if unknown or not chosen:
        raise ValueError(f"unknown {what} {unknown or '(none)'}; choose from {','.join(allowed)}")
    return chosen


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        precisions = _subset(args.precisions, PRECISIONS, "precisions")
        formats = _subset(args.formats, FORMATS, "formats")
    except ValueError as exc:
        print(f"build-contract: error: {exc}", file=sys.stderr)
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
        formats=formats,
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
