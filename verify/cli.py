"""``verify-contract PATH...``: exit 0 when every check passes, 1 on a contract violation,
2 when the input cannot be verified at all."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
import time
from pathlib import Path

from contracts import REGISTRY
from contracts.environment import quiet_libraries
from contracts.project import (
    DEFAULT_OUTPUT,
    PROJECT_FILE,
    ProjectError,
    add_project_arguments,
    locate_project,
)
from verify.backends.runners import COMPUTE_UNITS
from verify.neighbours import QUERIES

EXIT_OK, EXIT_VIOLATION, EXIT_UNUSABLE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="verify-contract",
        description="Prove that a bundle's Core ML and ONNX artifacts honour their contract.",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="bundles, or a directory of bundles (default: the project file's output, else artifacts)",
    )
    add_project_arguments(parser)
    parser.add_argument(
        "--corpus",
        metavar="FILE",
        help="also audit every artifact and pipeline on these texts (.txt, .jsonl, .parquet; with "
        "--engine ray also s3://, gs:// and Parquet directories)",
    )
    parser.add_argument(
        "--corpus-column", default=None, help="field of .jsonl / column of .parquet (default text)"
    )
    parser.add_argument("--audit", action="store_true", help="audit on the project file's corpus")
    parser.add_argument(
        "--knn-queries",
        type=_non_negative,
        default=QUERIES,
        metavar="N",
        help=f"texts sampled for the corpus-wide kNN recall (default {QUERIES}; 0: in-block recall only)",
    )
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="run the audit in this process (default) or on Ray Data (pip install 'coreml-contract[scale]')",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help="Ray cluster to join (default: RAY_ADDRESS if set, else a local cluster)",
    )
    parser.add_argument(
        "--workers", type=int, metavar="N", help="Ray audit actors (default: the cluster's CPUs less one)"
    )
    parser.add_argument(
        "--worker-cpus",
        type=float,
        default=1.0,
        metavar="CPUS",
        help="CPUs each Ray actor reserves; its sessions run that many threads (default 1)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write a machine-readable report")
    parser.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML, one testcase per check")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="write a Markdown summary")
    parser.add_argument(
        "--html", type=Path, metavar="FILE", help="write an HTML report with error histograms (matplotlib)"
    )
    parser.add_argument(
        "--compute-units",
        choices=COMPUTE_UNITS,
        help="Core ML compute units on macOS (default CPU_ONLY); not available elsewhere",
    )
    parser.add_argument("--no-numerics", action="store_true", help="structure and metadata checks only")
    parser.add_argument(
        "--only", metavar="KEYS", default="", help="check only these artifacts, e.g. coreml-int8,onnx-int8"
    )
    parser.add_argument(
        "--save-outputs",
        type=Path,
        metavar="DIR",
        help="store every artifact's outputs on the goldens, per batch size (safetensors)",
    )
    parser.add_argument(
        "--load-outputs",
        type=Path,
        metavar="DIR",
        help="judge outputs stored by --save-outputs instead of running the artifacts",
    )
    parser.add_argument(
        "--contract-overrides",
        type=Path,
        metavar="FILE",
        help='JSON bounds to judge with: {"encoder_v1": {"onnx-int8": {"embedding": {"min_cosine": 0.999}}}}',
    )
    parser.add_argument(
        "--explain",
        metavar="KEY",
        help="compare this artifact op by op with its format's fp32 artifact on the worst golden rows "
        "and name the first op that breaks (done for any artifact whose numerics fail)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="verify the bundles, then mutants of them; exit 1 if a clean bundle fails or a mutant survives",
    )
    return parser


def _non_negative(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number ≥ 0")
    return int(value)


def _error(message: str) -> int:
    print(f"verify-contract: error: {message}", file=sys.stderr)
    return EXIT_UNUSABLE


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet_libraries()
    from rich.console import Console
    from rich.markup import escape

    from contracts.schema import UPDATABLE_KEY
    from verify.backends.runners import native_coreml_available
    from verify.bundle import find_bundles
    from verify.reports.report import print_explanations, print_table, print_worst_texts, summary_line
    from verify.result import UnusableInput
    from verify.runs import read_overrides
    from verify.verifier import VerifyOptions, verify_paths

    if args.compute_units and not native_coreml_available():
        return _error(f"--compute-units {args.compute_units} needs the Core ML runtime (macOS)")
    only = tuple(k.strip() for k in args.only.split(",") if k.strip())
    keys = {a.key for c in REGISTRY.values() for a in c.artifacts}
    keys |= {UPDATABLE_KEY for c in REGISTRY.values() if c.training}
    unknown = sorted(set(only) - keys)
    if unknown:
        return _error(f"--only: unknown artifact keys {', '.join(unknown)}")
    if args.explain is not None:
        explainable = sorted({a.key for c in REGISTRY.values() for a in c.artifacts})
        if args.explain not in explainable:
            return _error(
                f"--explain: unknown artifact key {args.explain!r} (one of {', '.join(explainable)})"
            )
        if args.no_numerics:
            return _error("--explain needs the numerics; drop --no-numerics")
        only = only or (args.explain,)
    try:
        project = locate_project(args.project, args.no_project)
    except ProjectError as exc:
        return _error(str(exc))
    if project is not None:
        _note(f"project {project.file}")
    targets = args.paths or [project.output if project else Path(DEFAULT_OUTPUT)]
    if not args.paths and project is None:
        _note(f"no {PROJECT_FILE} found here or above: verifying {DEFAULT_OUTPUT}/")
    corpus = args.corpus or (project.corpus if args.audit and project else None)
    if args.audit and corpus is None:
        return _error("--audit: the project file names no [audit] corpus (or use --corpus FILE)")
    if args.engine == "local" and corpus is not None and "://" in str(corpus):
        return _error(f"--corpus {corpus}: a remote corpus needs --engine ray")
    if args.workers is not None and args.workers < 1:
        return _error(f"--workers {args.workers}: must be at least 1")
    if args.worker_cpus <= 0:
        return _error(f"--worker-cpus {args.worker_cpus:g}: must be positive")
    if project is not None and not only and (project.precisions or project.formats):
        only = _built_by(project, keys)
    if args.load_outputs is not None and not args.load_outputs.is_dir():
        return _error(f"--load-outputs {args.load_outputs}: no such directory")
    if args.load_outputs is not None and (args.save_outputs or args.no_numerics or corpus is not None):
        return _error("--load-outputs judges stored runs: it takes no --save-outputs, --no-numerics or audit")
    try:
        overrides = read_overrides(args.contract_overrides, REGISTRY) if args.contract_overrides else {}
        if args.save_outputs is not None:
            args.save_outputs.mkdir(parents=True, exist_ok=True)
    except UnusableInput as exc:
        return _error(str(exc))
    except OSError as exc:
        return _error(f"--save-outputs {args.save_outputs}: {exc.strerror}")
    options = VerifyOptions(
        compute_units=args.compute_units,
        numerics=not args.no_numerics,
        only=only,
        ship=project.ship if project else {},
        pipeline_budgets=project.pipeline_budgets if project else {},
        weight_pins={n: f.sha256 for n, f in project.weights.items()} if project else {},
        tokens_pin=project.tokens.sha256 if project and project.tokens else None,
        save_outputs=args.save_outputs,
        load_outputs=args.load_outputs,
        overrides=overrides,
        explain=(args.explain,) if args.explain else (),
    )
    paths = [bundle for path in targets for bundle in find_bundles(path)]
    if args.self_test:
        return _self_test(paths)
    try:
        reports = verify_paths(paths, options)
        if corpus is not None:
            column = args.corpus_column or (project.corpus_column if project else "text")
            reports.append(_audit(paths, corpus, column, options, project, args))
    except UnusableInput as exc:
        return _error(str(exc))
    except ValueError as exc:  # e.g. --compute-units where Core ML is absent, an unreadable corpus
        return _error(str(exc))
    code = EXIT_VIOLATION if any(r.failed for r in reports) else EXIT_OK
    console = Console(stderr=False, width=160 if not sys.stdout.isatty() else None)
    if not args.quiet:
        print_table(reports, console)
        print_worst_texts(reports, console)
        print_explanations(reports, console)
    verdict = "[green]PASS[/] " if code == EXIT_OK else "[bold red]FAIL[/] "
    console.print(verdict + escape(summary_line(reports)))
    for path, write in _writers(args).items():
        try:
            write(path, reports, code)
        except OSError as exc:
            return _error(f"cannot write {path}: {exc.strerror}")
    return code


def _built_by(project, keys: set[str]) -> tuple[str, ...]:
    """The artifact keys a project's [build] section builds (the updatable model needs Core ML),
    and those its [ship.*] targets name: a shipped artifact that is not built fails as missing."""
    from contracts.schema import UPDATABLE_KEY

    formats, precisions = project.formats, project.precisions
    chosen = {
        key
        for key in keys
        if key != UPDATABLE_KEY
        and (formats is None or key.split("-")[0] in formats)
        and (precisions is None or key.split("-")[1] in precisions)
    }
    if formats is None or "coreml" in formats:
        chosen.add(UPDATABLE_KEY)
    chosen |= {key for models in project.ship.values() for key in models.values()}
    return tuple(sorted(chosen))


def _note(message: str) -> None:
    print(f"verify-contract: {message}", file=sys.stderr)


def _audit(paths: list[Path], corpus: Path | str, column: str, options, project, args):
    """The corpus audit as one more report, with a progress bar on stderr."""
    from verify.audit import AuditRequest, plan_audit, run_audit, sample_queries
    from verify.bundle import open_bundle
    from verify.corpus import chunked, count_texts, read_texts
    from verify.neighbours import sample_texts
    from verify.verifier import BundleReport

    request = AuditRequest(
        corpus=corpus if args.engine == "ray" else Path(corpus),
        column=column,
        only=options.only,
        budgets=project.audit_budgets if project else {},
        pipeline_budgets=options.pipeline_budgets,
        ship=options.ship,
        compute_units=options.compute_units,
        queries=args.knn_queries,
    )
    name = str(corpus).rstrip("/").rsplit("/", 1)[-1]
    local_file = Path(corpus) if "://" not in str(corpus) and Path(corpus).is_file() else None
    total = count_texts(local_file, column) if local_file else None
    started = time.perf_counter()
    with _audit_progress(name, total, args.quiet) as advance:
        if args.engine == "ray":
            from verify.audit_ray import RayOptions, run_ray_audit

            engine = RayOptions(args.ray_address, args.workers, args.worker_cpus)
            results, seen = run_ray_audit(paths, request, engine, advance)
        else:
            blocks = chunked(read_texts(Path(corpus), column), request.block)
            first = next(blocks, None)  # a corpus that cannot be read fails here, before anything loads
            if first is None:
                raise ValueError(f"{corpus}: no texts")
            plan, tokenizer = plan_audit([open_bundle(p) for p in paths], request)
            if request.queries:  # a pre-pass over the texts alone picks the corpus-wide kNN sample
                sample, texts = sample_texts(
                    chunked(read_texts(Path(corpus), column), request.block), request.queries
                )
                sample_queries(plan, tokenizer, sample, texts, request)
            results, seen = run_audit(
                plan, tokenizer, itertools.chain([first], blocks), request.batch_size, advance
            )
    seconds = time.perf_counter() - started
    if not args.quiet:
        print(
            f"verify-contract: audited {seen} texts in {seconds:.0f} s ({seen / seconds:.1f} texts/s, "
            f"{args.engine} engine) against the bundles' onnx-fp32 artifacts (the goldens prove them "
            "equal to torch)",
            file=sys.stderr,
        )
    report = BundleReport(Path(str(corpus)), "audit")
    report.checks.extend(results)
    return report


@contextlib.contextmanager
def _audit_progress(name: str, total: int | None, quiet: bool):
    """A progress bar on a terminal, a line every 10 s otherwise; yields the advance callback."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    columns = (TextColumn("audit {task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("texts"))
    started = last_line = time.perf_counter()
    with Progress(
        *columns,
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or not console.is_terminal,
        transient=True,
    ) as progress:
        task = progress.add_task(name, total=total, rate="")

        def advance(count: int) -> None:
            nonlocal last_line
            done = progress.tasks[0].completed + count
            now = time.perf_counter()
            rate = f"{done / max(now - started, 1e-9):.1f} texts/s"
            progress.update(task, advance=count, rate=rate)
            if not quiet and not console.is_terminal and now - last_line > 10:
                _note(f"audit {name}: {done:.0f}/{total or '?'} texts, {rate}")
                last_line = now

        yield advance


def _self_test(paths: list[Path]) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from verify.reports.report import summary_line
    from verify.result import UnusableInput
    from verify.selftest.run import self_test

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
            status = "[bold red]caught by another check[/]"
        detail = outcome.error or ", ".join(outcome.failing)
        table.add_row(
            outcome.mutant.name, outcome.mutant.contract, outcome.mutant.expected, status, escape(detail)
        )
    console.print(table)
    caught = sum(o.caught for o in result.outcomes)
    expected = sum(o.caught_as_expected for o in result.outcomes)
    clean = "pass" if not any(r.failed for r in result.clean) else "FAIL"
    console.print(
        f"self-test: {caught}/{len(result.outcomes)} mutants caught, {expected} by the check meant for them; "
        f"clean bundles {clean}"
    )
    return EXIT_OK if result.passed else EXIT_VIOLATION


def _writers(args: argparse.Namespace) -> dict:
    """Report files asked for, each with its writer."""
    from verify.reports import junit, markdown, report, visual

    chosen = {
        args.json: report.write_json,
        args.junit: lambda path, reports, code: junit.write_junit(path, reports),
        args.markdown: markdown.write_markdown,
        args.html: visual.write_html,
    }
    return {path: write for path, write in chosen.items() if path is not None}


if __name__ == "__main__":
    sys.exit(main())
