"""Run every check on one or more bundles."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from verify.bundle import Bundle, open_bundle
from verify.checks.coreml_structure import check_coreml
from verify.checks.integrity import (
    bundle_facts,
    check_contract,
    check_encoder_fingerprint,
    check_golden_freshness,
    check_manifest,
    check_pinning,
    load_golden,
)
from verify.checks.numerics import check_numerics
from verify.checks.onnx_structure import check_onnx
from verify.checks.size import check_size
from verify.checks.updatable import KEY as UPDATABLE_KEY
from verify.checks.updatable import check_updatable
from verify.result import CheckResult, failed, skipped
from verify.runners import OnnxRunner, Runner, coreml_runner


@dataclass
class VerifyOptions:
    compute_units: str | None = None  # Core ML runtime units on macOS; None = default
    numerics: bool = True
    only: tuple[str, ...] = ()  # artifact keys to check ("onnx-int8"); empty = all


@dataclass
class BundleReport:
    path: Path
    contract: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.failed]


def _runner(fmt: str, bundle: Bundle, path: Path, options: VerifyOptions) -> Runner:
    if fmt == "onnx":
        return OnnxRunner(bundle.registered, path)
    return coreml_runner(bundle.registered, path, options.compute_units)


def verify_bundle(bundle: Bundle, options: VerifyOptions) -> BundleReport:
    contract = bundle.registered
    report = BundleReport(bundle.root, contract.name)
    checks = report.checks
    checks.append(check_contract(bundle))
    checks.append(check_manifest(bundle))
    if contract.name == "encoder_v1":
        checks.append(check_encoder_fingerprint(bundle))
    golden, golden_check = load_golden(bundle)
    checks.append(golden_check)
    checks.append(check_golden_freshness(bundle))
    facts, fact_problems = bundle_facts(bundle)
    if fact_problems:
        checks.append(failed("bundle-facts", "; ".join(fact_problems)))
    for artifact in contract.artifacts:
        key = artifact.key
        if options.only and key not in options.only:
            continue
        try:
            path = bundle.path(artifact.filename)
        except ValueError as exc:
            checks.append(failed(f"{key}/present", str(exc)))
            continue
        if not path.exists():
            checks.append(failed(f"{key}/present", f"{artifact.filename} missing"))
            continue
        structure = (check_coreml if artifact.format == "coreml" else check_onnx)(key, contract, path, facts)
        checks.extend(structure)
        fp32 = contract.artifact(f"{artifact.format}-fp32").filename
        checks.append(check_size(artifact, path, bundle.path(fp32)))
        if not options.numerics:
            checks.append(skipped(f"{key}/numerics", "numerics disabled (--no-numerics)"))
        elif golden is None:
            checks.append(skipped(f"{key}/numerics", "no usable goldens (see the golden check)"))
        elif any(c.failed for c in structure if c.name.endswith(("/structure", "/checker"))):
            checks.append(skipped(f"{key}/numerics", "structure check failed; not run"))
        else:
            checks.extend(_numerics(artifact, bundle, path, golden, options))
    if contract.training and (not options.only or UPDATABLE_KEY in options.only):
        checks.extend(_updatable(bundle, golden, facts, options))
    return report


def _updatable(bundle: Bundle, golden, facts: dict[str, str], options: VerifyOptions) -> list[CheckResult]:
    filename = bundle.registered.training.filename
    try:
        path = bundle.path(filename)
    except ValueError as exc:
        return [failed(f"{UPDATABLE_KEY}/present", str(exc))]
    if not path.exists():
        return [failed(f"{UPDATABLE_KEY}/present", f"{filename} missing")]
    return check_updatable(bundle, path, facts, golden, options.numerics, options.compute_units)


def _numerics(artifact, bundle: Bundle, path: Path, golden, options: VerifyOptions) -> list[CheckResult]:
    name = f"{artifact.key}/numerics"
    try:
        runner = _runner(artifact.format, bundle, path, options)
    except ImportError as exc:
        return [skipped(name, f"needs macOS or the MIL executor ({exc})")]
    except Exception as exc:  # unsupported op, unreadable program, ...
        return [failed(name, f"{type(exc).__name__}: {exc}")]
    return check_numerics(artifact, bundle.registered, golden, runner)


def verify_paths(paths: list[Path], options: VerifyOptions) -> list[BundleReport]:
    """Verify each bundle; when an encoder and a personality bundle are both given, check pinning."""
    bundles = [open_bundle(path) for path in paths]
    reports = [verify_bundle(bundle, options) for bundle in bundles]
    encoders = [b for b in bundles if b.name == "encoder_v1"]
    for bundle, report in zip(bundles, reports):
        if bundle.name != "personality_v1":
            continue
        if encoders:
            report.checks.extend(check_pinning(bundle, encoder) for encoder in encoders)
        else:
            report.checks.append(
                skipped(
                    "encoder-pinning", "give the encoder bundle too (verify-contract ENCODER PERSONALITY)"
                )
            )
    return reports
