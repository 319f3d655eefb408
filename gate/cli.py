"""``gate-contract --base REF``: gate a pull request on the model it ships.

1. Builds the bundles from the project file at the head (the working tree) and at ``REF`` (a
   git worktree), each from its own pinned weight files, with this toolkit.
2. Verifies the head: every contract check, the shipped pipelines, and the corpus audit when
   the project names a corpus.
3. Runs ``diff-contract`` per model between base and head.
4. Fails on a contract violation; on a model whose outputs changed beyond tolerance although
   its weights did not; and on a breaking change of a model whose downstream models were not
   retrained (their weight files unchanged): "the embedding space changed; retrain
   PersonalityModel".

Exit codes: 0 pass, 1 fail (the summary names the reason), 2 unusable input (no git repository,
unknown REF, a pinned file that differs from its sha256, a build that fails).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from contracts import PIPELINES, REGISTRY
from contracts.environment import quiet_libraries
from contracts.project import (
    DEFAULT_OUTPUT,
    PROJECT_FILE,
    Project,
    ProjectError,
    add_project_arguments,
    find_project,
    known_contracts,
    load_project,
)

EXIT_PASS, EXIT_FAIL, EXIT_UNUSABLE = 0, 1, 2
DRIFT = {0: "identical", 10: "within tolerance", 20: "breaking"}


class GateError(Exception):
    """The gate cannot run: exit 2 with one line."""


@dataclass
class GateResult:
    reasons: list[str] = field(default_factory=list)  # why it fails
    notes: list[str] = field(default_factory=list)
    drift: dict[str, str] = field(default_factory=dict)  # model -> verdict
    verify_code: int | None = None

    @property
    def passed(self) -> bool:
        return not self.reasons


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gate-contract",
        description="Gate a model pull request: build head and base from the project file, verify, diff.",
        epilog="exit codes: 0 pass, 1 fail, 2 unusable input",
    )
    parser.add_argument("--base", required=True, help="git ref of the base, e.g. origin/main")
    add_project_arguments(parser)
    parser.add_argument("--reports", type=Path, default=Path("reports"), help="directory for the reports")
    parser.add_argument(
        "--base-artifacts",
        type=Path,
        metavar="DIR",
        help="use these prebuilt base bundles instead of building",
    )
    return parser


def _log(message: str) -> None:
    print(f"gate-contract: {message}", file=sys.stderr, flush=True)


def _git(root: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise GateError(
            f"git {' '.join(args)}: {result.stderr.strip().splitlines()[-1] if result.stderr else 'failed'}"
        )
    return result.stdout.strip()


def _build(project: Project | None, cwd: Path, output: Path, label: str) -> None:
    command = [sys.executable, "-m", "converters.cli", str(output)]
    command += ["--project", str(project.file)] if project else ["--no-project"]
    _log(f"building the {label} bundles → {output}")
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise GateError(f"the {label} build failed: {last}")
    _log(f"{label} built in {time.perf_counter() - start:.0f} s")


def _weights(project: Project | None) -> dict[str, str | None]:
    """Contract name -> sha256 of its pinned weights (None: demo weights)."""
    pinned = project.weights if project else {}
    return {name: (pinned[name].sha256 if name in pinned else None) for name in REGISTRY}


def _base_project(head: Project | None, root: Path, base_root: Path) -> Project | None:
    if head is None:
        return None
    candidate = base_root / head.file.relative_to(root)
    if not candidate.is_file():
        return None
    project = load_project(candidate, known_contracts())
    project.verify_pins()
    return project


def judge(
    drift: dict[str, str], head_weights: dict[str, str | None], base_weights: dict[str, str | None]
) -> tuple[list[str], list[str]]:
    """(reasons to fail, notes) from each model's drift verdict and whether its weights changed."""
    reasons, notes = [], []
    changed = {name: head_weights.get(name) != base_weights.get(name) for name in drift}
    for name, verdict in drift.items():
        if verdict == "breaking" and not changed[name]:
            reasons.append(f"{name}: outputs changed beyond tolerance although its weights did not")
        elif verdict == "breaking":
            notes.append(f"{name}: new weights change its outputs beyond tolerance")
    for pipeline in PIPELINES.values():
        for upstream_index, upstream in enumerate(pipeline.contracts[:-1]):
            if drift.get(upstream) != "breaking":
                continue
            for downstream in pipeline.contracts[upstream_index + 1 :]:
                if downstream in drift and not changed[downstream]:
                    reasons.append(
                        f"{upstream}: breaking change and {downstream} was not retrained for it "
                        f"(its weights are unchanged): the embedding space changed; retrain {downstream}"
                    )
                elif downstream in drift:
                    notes.append(f"{downstream} was retrained for the new {upstream} (new weights)")
    return reasons, notes


def run_gate(args: argparse.Namespace) -> GateResult:
    from verify.cli import main as verify_main
    from verify.diff_cli import main as diff_main

    start = Path.cwd()
    project_file = args.project or (None if args.no_project else find_project(start))
    project = load_project(project_file, known_contracts()) if project_file else None
    if project is not None:
        project.verify_pins()
    result = GateResult()
    if project is None:
        result.notes.append(f"no {PROJECT_FILE}: gating demo weights")
    root = Path(_git(project.root if project else start, "rev-parse", "--show-toplevel"))
    base_commit = _git(root, "rev-parse", "--verify", f"{args.base}^{{commit}}")
    reports = args.reports.resolve()
    reports.mkdir(parents=True, exist_ok=True)
    head_out = project.output if project else (start / DEFAULT_OUTPUT).resolve()
    _build(project, start, head_out, "head")
    verify_args = [str(head_out), "--quiet", "--json", str(reports / "verify.json")]
    verify_args += ["--junit", str(reports / "verify.xml"), "--markdown", str(reports / "verify.md")]
    verify_args += ["--project", str(project.file)] if project else ["--no-project"]
    if project and project.corpus:
        verify_args.append("--audit")
    _log("verifying the head")
    result.verify_code = verify_main(verify_args)
    if result.verify_code == EXIT_UNUSABLE:
        raise GateError("the head bundles could not be verified (see above)")
    if result.verify_code != EXIT_PASS:
        result.reasons.append("the head violates its contract (reports/verify.md names the checks)")
    with tempfile.TemporaryDirectory(prefix="gate-base-") as scratch:
        base_weights: dict[str, str | None]
        if args.base_artifacts:
            base_out = args.base_artifacts.resolve()
            base_weights = _recorded_weights(base_out)
        else:
            worktree = Path(scratch) / "worktree"
            _git(root, "worktree", "add", "--detach", str(worktree), base_commit)
            try:
                base_cwd = worktree / start.relative_to(root) if start.is_relative_to(root) else worktree
                base_project = _base_project(project, root, worktree)
                if project is not None and base_project is None:
                    result.notes.append(f"the base has no {PROJECT_FILE}: drift not checked")
                    return result
                base_out = Path(scratch) / "base-artifacts"
                _build(base_project, base_cwd, base_out, "base")
                base_weights = _weights(base_project)
            finally:
                _git(root, "worktree", "remove", "--force", str(worktree))
        for name in REGISTRY:
            old, new = base_out / name, head_out / name
            if not old.is_dir():
                result.notes.append(f"no base bundle for {name}: drift not checked")
                continue
            code = diff_main(
                [
                    str(old),
                    str(new),
                    "--json",
                    str(reports / f"drift-{name}.json"),
                    "--markdown",
                    str(reports / f"drift-{name}.md"),
                ]
            )
            if code not in DRIFT:
                raise GateError(f"diff-contract {name} could not compare the bundles (exit {code})")
            result.drift[name] = DRIFT[code]
    reasons, notes = judge(result.drift, _weights(project), base_weights)
    result.reasons += reasons
    result.notes += notes
    return result


def _recorded_weights(artifacts: Path) -> dict[str, str | None]:
    """Contract name -> the weights file sha256 a prebuilt bundle records (None: demo weights)."""
    import json

    recorded: dict[str, str | None] = {}
    for name in REGISTRY:
        try:
            manifest = json.loads((artifacts / name / "manifest.json").read_text())
            recorded[name] = (manifest.get("sources") or {}).get("weights_file_sha256")
        except (OSError, ValueError):
            recorded[name] = None
    return recorded


def summary(result: GateResult) -> str:
    lines = ["# gate-contract: " + ("PASS" if result.passed else "FAIL"), ""]
    lines += [f"- **fail**: {reason}" for reason in result.reasons]
    lines += [f"- drift {name}: {verdict}" for name, verdict in result.drift.items()]
    lines += [f"- note: {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet_libraries()
    try:
        result = run_gate(args)
    except (GateError, ProjectError) as exc:
        print(f"gate-contract: error: {exc}", file=sys.stderr)
        return EXIT_UNUSABLE
    text = summary(result)
    print(text, end="")
    try:
        (args.reports / "gate.md").write_text(text)
    except OSError as exc:
        print(
            f"gate-contract: error: cannot write {args.reports / 'gate.md'}: {exc.strerror}", file=sys.stderr
        )
        return EXIT_UNUSABLE
    return EXIT_PASS if result.passed else EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
