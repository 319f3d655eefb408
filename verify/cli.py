"""``verify-contract PATH...``: exit 0 when every check passes, 1 on a contract violation,
2 when the input cannot be verified at all."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contracts import REGISTRY
from contracts.environment import quiet_libraries

EXIT_OK, EXIT_VIOLATION, EXIT_UNUSABLE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="verify-contract",
        description="Prove that a bundle's Core ML and ONNX artifacts honour their contract.",
    )
    parser.add_argument("paths", nargs="+", type=Path, help="bundle directories, or a directory of bundles")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write a machine-readable report")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML, one testcase per check")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write a Markdown summary")
    parser.add_argument(
        "--html", type=Path, metavar="FILE", help="write an HTML report with error histograms (matplotlib)"
    )
    parser.add_argument(
        "--compute-units",
        choices=("CPU_ONLY", "ALL", "CPU_AND_NE", "CPU_AND_GPU"),
        help="Core ML compute units on macOS (default CPU_ONLY); not available elsewhere",
    )
    parser.add_argument("--no-numerics", action="store_true", help="structure and metadata checks only")
    parser.add_argument(
        "--only", metavar="KEYS", default="", help="check only these artifacts, e.g. coreml-int8,onnx-int8"
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="verify the bundles, then mutants of them; exit 1 if a clean bundle fails or a mutant survives",
    )
    return parser


def _error(message: str) -> int:
    print(f"verify-contract: error: {message}", file=sys.stderr)
    return EXIT_UNUSABLE


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet_libraries()
    from rich.console import Console
    from rich.markup import escape

    from verify.bundle import find_bundles
    from verify.checks.updatable import KEY as UPDATABLE_KEY
    from verify.report import print_table, summary_line
    from verify.result import UnusableInput
    from verify.runners import native_coreml_available
    from verify.verifier import VerifyOptions, verify_paths

    if args.compute_units and not native_coreml_available():
        return _error(f"--compute-units {args.compute_units} needs the Core ML runtime (macOS)")
    only = tuple(k.strip() for k in args.only.split(",") if k.strip())
    keys = {a.key for c in REGISTRY.values() for a in c.artifacts}
    keys |= {UPDATABLE_KEY for c in REGISTRY.values() if c.training}
    unknown = sorted(set(only) - keys)
    if unknown:
        return _error(f"--only: unknown artifact keys {', '.join(unknown)}")
    options = VerifyOptions(compute_units=args.compute_units, numerics=not args.no_numerics, only=only)
    paths = [bundle for path in args.paths for bundle in find_bundles(path)]
    if args.self_test:
        return _self_test(paths)
    try:
        reports = verify_paths(paths, options)
    except UnusableInput as exc:
        return _error(str(exc))
    except ValueError as exc:  # e.g. --compute-units where Core ML is absent
        return _error(str(exc))
    code = EXIT_VIOLATION if any(r.failed for r in reports) else EXIT_OK
    console = Console(stderr=False, width=160 if not sys.stdout.isatty() else None)
    if not args.quiet:
        print_table(reports, console)
    verdict = "[green]PASS[/] " if code == EXIT_OK else "[bold red]FAIL[/] "
    console.print(verdict + escape(summary_line(reports)))
    for path, write in _writers(args).items():
        try:
            write(path, reports, code)
        except OSError as exc:
            return _error(f"cannot write {path}: {exc.strerror}")
    return code


def _self_test(paths: list[Path]) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from verify.report import summary_line
    from verify.result import UnusableInput
    from verify.selftest import self_test

    console = Console(width=160 if not sys.stdout.isatty() else None)
    try:
        result = self_test(paths, log=lambda line: console.print(escape(line), style="dim"))
    except UnusableInput as exc:
        return _error(str(exc))
    console.print(f"clean bundles: {escape(summary_line(result.clean))}")
    table = Table(title="mutants", title_justify="left")
    for column in ("mutant", "bundle", "expected check", "status", "failing checks"):
        table.add_column(column, overflow="fold")
    for outcome in result.outcomes:
        status = "[green]caught[/]" if outcome.caught else "[bold red]survived[/]"
        if outcome.caught and not outcome.caught_as_expected:
            status = "[yellow]caught (other check)[/]"
        detail = outcome.error or ", ".join(outcome.failing)
        table.add_row(
            outcome.mutant.name, outcome.mutant.contract, outcome.mutant.expected, status, escape(detail)
        )
    console.print(table)
    caught = sum(o.caught for o in result.outcomes)
    clean = "pass" if not any(r.failed for r in result.clean) else "FAIL"
    console.print(f"self-test: {caught}/{len(result.outcomes)} mutants caught; clean bundles {clean}")
    return EXIT_OK if result.passed else EXIT_VIOLATION


def _writers(args: argparse.Namespace) -> dict:
    """Report files asked for, each with its writer."""
    from verify import junit, markdown, report, visual

    chosen = {
        args.json: report.write_json,
        args.junit: lambda path, reports, code: junit.write_junit(path, reports),
        args.markdown: markdown.write_markdown,
        args.html: visual.write_html,
    }
    return {path: write for path, write in chosen.items() if path is not None}


if __name__ == "__main__":
    sys.exit(main())
