"""Test helpers: run the CLIs in-process and make consistent-but-wrong bundles."""

from __future__ import annotations

import json
from pathlib import Path

from verify.selftest.mutants import edit_coreml_spec, rehash_manifest

__all__ = ["edit_coreml_spec", "rehash_manifest", "failing_checks", "run_verify", "verify_fails_with"]


def run_verify(capsys, *args: str) -> tuple[int, str, str]:
    from verify.cli import main

    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def failing_checks(report_path: Path) -> set[str]:
    report = json.loads(report_path.read_text())
    return {c["name"] for b in report["bundles"] for c in b["checks"] if c["status"] == "fail"}


def verify_fails_with(capsys, tmp_path: Path, bundle: Path, expected: str, *extra: str) -> set[str]:
    """Run verify-contract on ``bundle``; it must exit 1 and ``expected`` must be among the failures."""
    report = tmp_path / "report.json"
    code, out, err = run_verify(capsys, bundle, "--json", report, *extra)
    failures = failing_checks(report)
    assert code == 1, out + err
    assert expected in failures, failures
    assert expected in out  # named in the summary line too
    return failures
