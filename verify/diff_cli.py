"""``diff-contract OLD NEW``: how far a new bundle's outputs moved from the old one's.

Exit codes: 0 identical, 10 within tolerance, 20 breaking, 2 input that cannot be compared.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from contracts.environment import quiet_libraries

EXIT_UNUSABLE = 2
EXIT_CODES = {"identical": 0, "within tolerance": 10, "breaking": 20}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diff-contract",
        description="Compare two versions of a bundle on the union of their golden inputs.",
        epilog="exit codes: 0 identical, 10 within tolerance, 20 breaking, 2 unusable input",
    )
    parser.add_argument("old", type=Path, help="the bundle before (e.g. the base branch's)")
    parser.add_argument("new", type=Path, help="the bundle after")
    parser.add_argument("--artifact", default="onnx-fp32", help="artifact key to run (default onnx-fp32)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the statistics as JSON")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write a Markdown summary")
    return parser


def _error(message: str) -> int:
    print(f"diff-contract: error: {message}", file=sys.stderr)
    return EXIT_UNUSABLE


def _open(path: Path, label: str):
    """The bundle and its goldens, refusing a bundle whose files do not match its manifest."""
    from verify.bundle import open_bundle
    from verify.checks.integrity import check_manifest, load_golden

    bundle = open_bundle(path)
    manifest = check_manifest(bundle)
    if manifest.failed:
        raise ValueError(f"{label} {path}: manifest: {manifest.message}")
    golden, check = load_golden(bundle)
    if golden is None:
        raise ValueError(f"{label} {path}: golden: {check.message}")
    return bundle, golden


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet_libraries()
    from verify.drift import diff_bundles
    from verify.result import UnusableInput

    try:
        old, old_golden = _open(args.old, "OLD")
        new, new_golden = _open(args.new, "NEW")
        if old.name != new.name:
            return _error(f"OLD is {old.name} but NEW is {new.name}")
        keys = [a.key for a in new.registered.artifacts]
        if args.artifact not in keys:
            return _error(f"--artifact {args.artifact!r} is not one of {', '.join(keys)}")
        report = diff_bundles(old, new, old_golden, new_golden, args.artifact)
    except (UnusableInput, ValueError, OSError) as exc:
        return _error(str(exc))
    except Exception as exc:  # the runtime refused an artifact (truncated file, unsupported op, ...)
        first_line = (str(exc).strip().splitlines() or [""])[0][:300]
        return _error(f"cannot run {args.artifact}: {type(exc).__name__}: {first_line}")
    _print(report)
    code = EXIT_CODES[report.verdict]
    try:
        if args.json:
            args.json.write_text(json.dumps(_to_dict(report, code), indent=1) + "\n")
        if args.markdown:
            args.markdown.write_text(_to_markdown(report), encoding="utf-8")
    except OSError as exc:
        return _error(f"cannot write report: {exc}")
    return code


_SHOWN = ("min_cosine", "mean_cosine", "max_abs", "nn_agreement", "flip_rate", "top10_overlap")


def _print(report) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(width=160 if not sys.stdout.isatty() else None)
    table = Table(
        title=f"{report.contract} {report.artifact}: {report.rows} golden inputs", title_justify="left"
    )
    for column in ("output", *_SHOWN, "verdict"):
        table.add_column(column)
    for drift in report.outputs:
        cells = [f"{drift.stats[m]:.6g}" if m in drift.stats else "—" for m in _SHOWN]
        table.add_row(
            drift.output,
            *cells,
            escape(drift.verdict + ("; " + "; ".join(drift.problems) if drift.problems else "")),
        )
    console.print(table)
    for note in report.notes:
        console.print(f"note: {escape(note)}")
    colour = {"identical": "green", "within tolerance": "yellow", "breaking": "bold red"}[report.verdict]
    console.print(f"[{colour}]{escape(report.message)}[/]")


def _to_dict(report, code: int) -> dict:
    return {
        "contract": report.contract,
        "artifact": report.artifact,
        "rows": report.rows,
        "verdict": report.verdict,
        "message": report.message,
        "exit_code": code,
        "notes": report.notes,
        "outputs": [
            {"output": d.output, "verdict": d.verdict, "problems": d.problems, "stats": d.stats}
            for d in report.outputs
        ],
    }


def _to_markdown(report) -> str:
    lines = [
        f"# diff-contract: {report.message}",
        "",
        f"{report.contract}, `{report.artifact}`, {report.rows} golden inputs",
        "",
        "| output | " + " | ".join(_SHOWN) + " | verdict |",
        "|---" * (len(_SHOWN) + 2) + "|",
    ]
    for drift in report.outputs:
        cells = [f"{drift.stats[m]:.6g}" if m in drift.stats else "—" for m in _SHOWN]
        lines.append(f"| {drift.output} | " + " | ".join(cells) + f" | {drift.verdict} |")
    lines += ["", *(f"- {note}" for note in report.notes)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
