"""Test helpers: run the CLIs in-process and make consistent-but-wrong bundles."""

from __future__ import annotations

import json
from pathlib import Path

from contracts.hashing import tree_sha256


def run_verify(capsys, *args: str) -> tuple[int, str, str]:
    from verify.cli import main

    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def rehash_manifest(bundle: Path) -> None:
    """Recompute the manifest's file hashes, as a careless rebuild would: the mutation then
    shows up only in the check that is meant to catch it, not as a hash mismatch."""
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"] = {k: v for k, v in tree_sha256(bundle).items() if k != "manifest.json"}
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True))


def failing_checks(report_path: Path) -> set[str]:
    report = json.loads(report_path.read_text())
    return {c["name"] for b in report["bundles"] for c in b["checks"] if c["status"] == "fail"}


def coreml_spec_path(mlpackage: Path) -> Path:
    return mlpackage / "Data" / "com.apple.CoreML" / "model.mlmodel"


def edit_coreml_spec(mlpackage: Path, edit) -> None:
    """Load the Model proto inside an .mlpackage, apply ``edit(spec)``, write it back."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(mlpackage))
    edit(spec)
    coreml_spec_path(mlpackage).write_bytes(spec.SerializeToString())


def verify_fails_with(capsys, tmp_path: Path, bundle: Path, expected: str, *extra: str) -> set[str]:
    """Run verify-contract on ``bundle``; it must exit 1 and ``expected`` must be among the failures."""
    report = tmp_path / "report.json"
    code, out, err = run_verify(capsys, bundle, "--json", report, *extra)
    failures = failing_checks(report)
    assert code == 1, out + err
    assert expected in failures, failures
    assert expected in out  # named in the summary line too
    return failures
