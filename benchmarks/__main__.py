"""``python -m benchmarks [ARTIFACTS]``: measure build, verify, tests, throughput, sizes; print the
tables and, with ``--write``, rewrite the generated block of docs/BENCHMARKS.md.

    python -m benchmarks artifacts --write            # the full run (builds ARTIFACTS first)
    python -m benchmarks artifacts --quick            # reuse existing bundles, 2 rounds, 128 held-out texts
    python -m benchmarks artifacts --with-tests       # also time `pytest -q` once (~5 min)

The machine is shared: every number is a median over repeats, and every ratio comes from one
interleaved run (see benchmarks/timing.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.throughput import HELD_OUT_TEXTS
from contracts import REGISTRY
from contracts.environment import quiet_libraries

DESCRIPTION = (
    "Measure build, verify, tests, encoder and PersonalityModel throughput, MIL executor and sizes on "
    "this machine; print the tables, and with --write rewrite the generated block of docs/BENCHMARKS.md."
)
DOC = Path(__file__).resolve().parents[1] / "docs" / "BENCHMARKS.md"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=DESCRIPTION)
    parser.add_argument("artifacts", nargs="?", type=Path, default=Path("artifacts"), help="bundle directory")
    parser.add_argument(
        "--repeats", type=int, default=7, help="interleaved rounds per throughput measurement"
    )
    parser.add_argument("--build-repeats", type=int, default=1, help="builds to time (each ~2 min)")
    parser.add_argument("--verify-repeats", type=int, default=3, help="verify-contract runs to time")
    parser.add_argument("--no-build", action="store_true", help="measure the bundles already in ARTIFACTS")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="2 rounds, one verify run, no build where the bundles exist, no profile",
    )
    parser.add_argument("--with-tests", action="store_true", help="also time `pytest -q` once (~5 min)")
    parser.add_argument("--no-profile", action="store_true", help="skip the profilers")
    parser.add_argument("--no-optimizer", action="store_true", help="skip the transformer-optimizer variants")
    parser.add_argument(
        "--held-out",
        type=int,
        default=HELD_OUT_TEXTS,
        metavar="N",
        help="texts in the held-out encoder corpus, from installed packages (0: golden corpus only)",
    )
    parser.add_argument(
        "--write", nargs="?", type=Path, const=DOC, metavar="FILE", help="rewrite the generated block of FILE"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every measurement as JSON")
    return parser


def _bundles_present(artifacts: Path) -> bool:
    return all((artifacts / name / "manifest.json").is_file() for name in REGISTRY)


def sizes(artifacts: Path) -> dict[str, dict[str, int]]:
    found = {}
    for name in REGISTRY:
        manifest = json.loads((artifacts / name / "manifest.json").read_text())
        found[name] = {key: entry["size_bytes"] for key, entry in manifest["artifacts"].items()}
    return found


def _step(message: str) -> None:
    print(f"[benchmarks] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace, command: str) -> dict:
    from benchmarks import commands, machine, throughput
    from benchmarks.mil_vs_ort import measure

    artifacts = args.artifacts.resolve()
    start = time.perf_counter()
    results: dict = {
        "command": command,
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine.describe(),
        "load_average": {"start": machine.load_average()},
        "repeats": args.repeats,
    }
    build = not args.no_build and not (args.quick and _bundles_present(artifacts))
    if build:
        _step(f"build-contract {artifacts} × {args.build_repeats}")
        results["build"] = commands.time_build(artifacts, args.build_repeats)
    elif not _bundles_present(artifacts):
        raise SystemExit(f"python -m benchmarks: no bundles in {artifacts} (drop --no-build)")
    _step(f"verify-contract × {args.verify_repeats}")
    results["verify"] = commands.time_verify(artifacts, args.verify_repeats)
    with tempfile.TemporaryDirectory(prefix="benchmarks-") as tmp:
        workdir = None if args.no_optimizer else Path(tmp)
        _step(f"encoder throughput, {args.repeats} rounds")
        results["encoder"] = throughput.encoder_throughput(artifacts / "encoder_v1", args.repeats, workdir)
        if args.held_out > 0:
            _step(f"encoder throughput on {args.held_out} held-out texts, {args.repeats} rounds")
            corpus = throughput.held_out_corpus(artifacts / "encoder_v1", args.held_out)
            results["encoder_held_out"] = throughput.encoder_throughput(
                artifacts / "encoder_v1", args.repeats, corpus=corpus, full=False
            )
        _step(f"PersonalityModel throughput, {args.repeats} rounds")
        results["personality"] = throughput.personality_throughput(artifacts / "personality_v1", args.repeats)
        _step(f"MIL executor vs onnxruntime, {args.repeats} rounds")
        results["mil_vs_ort"] = measure(artifacts, args.repeats)
        results["sizes"] = sizes(artifacts)
        if not args.no_profile:
            from benchmarks.profiling import profile_encoder

            _step("profiles")
            extra = {name: Path(v["path"]) for name, v in results["encoder"]["optimizer"].items()}
            results["profile"] = profile_encoder(
                artifacts / "encoder_v1", throughput.sentence_transformer(), extra
            )
    if args.with_tests:
        _step("pytest -q")
        results["tests"] = commands.time_tests()
    results["load_average"]["end"] = machine.load_average()
    results["seconds"] = time.perf_counter() - start
    return results


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    if args.quick:
        args.repeats, args.verify_repeats, args.no_profile = min(args.repeats, 2), 1, True
        args.held_out = min(args.held_out, 128)
    quiet_libraries()
    from benchmarks.commands import CommandFailed
    from benchmarks.report import render, write_doc, write_json

    try:
        results = run(args, " ".join(["python -m benchmarks", *argv]))
    except CommandFailed as exc:
        print(f"python -m benchmarks: {exc}", file=sys.stderr)
        return 1
    text = render(results)
    print(text)
    if args.json:
        write_json(args.json, results)
    if args.write:
        write_doc(args.write, text)
        _step(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
