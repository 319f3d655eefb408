"""Run every check on one or more bundles."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from contracts import PIPELINES, PipelineContract
from contracts.schema import UPDATABLE_KEY, ArtifactSpec
from verify.backends.runners import Runner, artifact_runner, coreml_backend, native_coreml_available
from verify.bundle import Bundle, open_bundle
from verify.checks.coreml_structure import check_coreml
from verify.checks.integer_kernels import check_integer_kernels
from verify.checks.integrity import (
    bundle_facts,
    check_content,
    check_contract,
    check_encoder_fingerprint,
    check_golden_freshness,
    check_graph,
    check_manifest,
    check_pinning,
    load_golden,
)
from verify.checks.neural_engine import ENGINE_UNITS, check_neural_engine
from verify.checks.numerics import RunsByBatch, check_numerics, judge_numerics, name_nonfinite_op
from verify.checks.onnx_structure import check_onnx
from verify.checks.size import check_size
from verify.checks.tokenizer import check_tokenizer, check_tokenizer_conformance
from verify.checks.updatable import check_updatable
from verify.explain import explain_artifact
from verify.pipelines import StageInput, check_pipeline, not_checked, reference_problems, with_budgets
from verify.result import CheckResult, failed, skipped, verdict
from verify.runs import Overrides, load_runs, save_runs, with_overrides
from verify.self_golden import (
    SELF_GOLDEN_BATCH,
    SelfGolden,
    check_self_golden,
    read_self_golden,
    self_golden_path,
)

if TYPE_CHECKING:
    from golden.store import Golden


@dataclass
class VerifyOptions:
    compute_units: str | None = None  # Core ML runtime units on macOS; None = default
    numerics: bool = True
    only: tuple[str, ...] = ()  # artifact keys to check ("onnx-int8"); empty = all
    ship: dict[str, dict[str, str]] = field(default_factory=dict)  # project: target -> model -> artifact
    pipeline_budgets: dict[str, float] = field(default_factory=dict)  # project: metric -> limit
    weight_pins: dict[str, str] = field(default_factory=dict)  # project: contract -> weights file sha256
    tokens_pin: str | None = None  # project: tokens file sha256
    save_outputs: Path | None = None  # store every artifact's golden outputs here (verify/runs.py)
    load_outputs: Path | None = None  # judge stored outputs instead of running the artifacts
    overrides: Overrides = field(default_factory=dict)  # bounds to judge with instead of the contract's
    explain: tuple[str, ...] = ()  # artifact keys to explain op by op (verify/explain.py)
    explain_failures: bool = True  # explain every artifact whose numerics fail


@dataclass
class BundleReport:
    path: Path
    contract: str
    checks: list[CheckResult] = field(default_factory=list)
    golden: Golden | None = field(default=None, repr=False)  # usable goldens, for pipelines
    runs: dict[str, RunsByBatch] = field(default_factory=dict, repr=False)  # artifact -> golden outputs

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.failed]


def _runner(artifact: ArtifactSpec, bundle: Bundle, path: Path, options: VerifyOptions) -> Runner:
    return artifact_runner(bundle.registered, artifact, path, options.compute_units)


def verify_bundle(bundle: Bundle, options: VerifyOptions) -> BundleReport:
    contract = bundle.registered
    report = BundleReport(bundle.root, contract.name)
    checks = report.checks
    checks.append(check_contract(bundle))
    checks.append(check_manifest(bundle))
    if contract.name in _consumed_contracts():  # its embedding space is pinned by others
        checks.append(check_encoder_fingerprint(bundle))
    if contract.name in options.weight_pins or (options.tokens_pin and _has_tokens(contract)):
        checks.append(check_project_pins(bundle, options.weight_pins.get(contract.name), options.tokens_pin))
    golden, golden_check = load_golden(bundle)
    report.golden = golden
    checks.append(golden_check)
    if contract.tokenizer is not None:
        checks.append(check_tokenizer(bundle, golden))
        if contract.tokenizer.conformance:
            checks.append(check_tokenizer_conformance(bundle))
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
        checks.append(check_content(bundle, key, path))
        checks.append(check_graph(bundle, key, path))
        units = _engine_units(artifact, options)
        if units is not None:
            checks.append(check_neural_engine(artifact, path, units))
        try:
            fp32_path: Path | None = bundle.path(contract.artifact(f"{artifact.format}-fp32").filename)
        except ValueError:
            fp32_path = None  # reported by that artifact's own present check
        size = check_size(artifact, path, fp32_path)
        if size is not None:
            checks.append(size)
        if not options.numerics:
            checks.append(skipped(f"{key}/numerics", "numerics disabled (--no-numerics)"))
        elif golden is None:
            checks.append(skipped(f"{key}/numerics", "no usable goldens (see the golden check)"))
        elif any(c.failed for c in structure if c.name.endswith(("/structure", "/checker"))):
            checks.append(skipped(f"{key}/numerics", "structure check failed; not run"))
        else:
            checks.extend(_numerics(artifact, bundle, path, golden, options, report.runs))
    if contract.training and (not options.only or UPDATABLE_KEY in options.only):
        checks.extend(_updatable(bundle, golden, facts, options))
    return report


def _has_tokens(contract) -> bool:
    return any(m.source == "tokens" for m in contract.metadata)


def check_project_pins(bundle: Bundle, weights: str | None, tokens: str | None) -> CheckResult:
    """The bundle was built from the weight (and tokens) files the project pins, not older ones."""
    sources = (bundle.manifest or {}).get("sources") or {}
    problems = []
    if weights is not None and sources.get("weights_file_sha256") != weights:
        built = sources.get("weights_file_sha256") or "demo weights"
        problems.append(f"built from weights {str(built)[:16]}, the project pins {weights[:16]}")
    if tokens is not None and _has_tokens(bundle.registered) and sources.get("tokens_file_sha256") != tokens:
        built = sources.get("tokens_file_sha256") or "the default tokens"
        problems.append(f"built from tokens {str(built)[:16]}, the project pins {tokens[:16]}")
    hint = "; rebuild with `build-contract`" if problems else ""
    return verdict(
        "project-pins", [p + hint for p in problems[:1]] + problems[1:], "built from the pinned files"
    )


def _updatable(bundle: Bundle, golden, facts: dict[str, str], options: VerifyOptions) -> list[CheckResult]:
    filename = bundle.registered.training_spec.filename
    try:
        path = bundle.path(filename)
    except ValueError as exc:
        return [failed(f"{UPDATABLE_KEY}/present", str(exc))]
    if not path.exists():
        return [failed(f"{UPDATABLE_KEY}/present", f"{filename} missing")]
    stored = options.load_outputs is not None
    return [check_content(bundle, UPDATABLE_KEY, path)] + check_updatable(
        bundle,
        path,
        facts,
        golden,
        options.numerics and not stored,
        options.compute_units,
        "stored runs hold no updatable pipeline (--load-outputs)"
        if stored
        else "numerics disabled (--no-numerics)",
    )


def _numerics(
    artifact, bundle: Bundle, path: Path, golden, options: VerifyOptions, runs: dict[str, RunsByBatch]
) -> list[CheckResult]:
    name = f"{artifact.key}/numerics"
    contract = bundle.registered
    device = _device_bounds(artifact, options)
    judged = replace(artifact, tolerances=device.tolerances) if device else artifact
    judged = with_overrides(contract.name, judged, options.overrides)
    if options.load_outputs is not None:
        try:
            stored = load_runs(options.load_outputs, contract.name, artifact.key)
        except ValueError as exc:
            return [failed(name, f"{exc}; save them with --save-outputs")]
        runs[artifact.key] = stored.runs
        backend = stored.backend
        results = judge_numerics(judged, contract, golden, stored.runs, f"{backend} (stored)")
    else:
        try:
            runner = _runner(artifact, bundle, path, options)
        except ImportError as exc:
            return [skipped(name, f"needs macOS or the MIL executor ({exc})")]
        except Exception as exc:  # unsupported op, unreadable program, ...
            return [failed(name, f"{type(exc).__name__}: {exc}")]
        results = check_numerics(judged, contract, golden, runner, runs.setdefault(artifact.key, {}))
        results = name_nonfinite_op(results, runner, path, contract, golden, runs[artifact.key])
        kernels = check_integer_kernels(artifact, contract, golden, runner, runs[artifact.key])
        results += [kernels] if kernels else []
        backend = runner.backend
        if options.save_outputs is not None and runs[artifact.key]:
            save_runs(options.save_outputs, contract.name, artifact.key, runs[artifact.key], backend)
    try:
        recorded: SelfGolden | str = read_self_golden(bundle.path(self_golden_path(artifact.key)))
    except ValueError as exc:
        recorded = f"no readable self-golden {self_golden_path(artifact.key)} ({exc}); rebuild the bundle"
    if device is not None:
        results = [replace(r, details={**r.details, "bounds": _on_device(r, device)}) for r in results]
    batch_one = runs[artifact.key].get(SELF_GOLDEN_BATCH)
    results += check_self_golden(artifact, contract, recorded, batch_one, backend)
    numerics_failed = any(r.failed for r in results if r.name.startswith(name))
    if artifact.key in options.explain or (
        numerics_failed and options.explain_failures and options.load_outputs is None and artifact.op_floor
    ):
        results.append(explain_artifact(bundle, artifact, golden, runs[artifact.key]))
    return results


def _engine_units(artifact, options: VerifyOptions) -> str | None:
    """The compute units to ask MLComputePlan about: only where the Neural Engine may run ops."""
    if artifact.format != "coreml" or options.load_outputs is not None:
        return None
    backend = coreml_backend(options.compute_units, native_coreml_available())
    return backend if backend in ENGINE_UNITS else None


def _device_bounds(artifact, options: VerifyOptions):
    """The contract's bounds for the compute units the Core ML runtime runs with (none for the
    MIL executor, ONNX, or stored runs)."""
    if artifact.format != "coreml" or options.load_outputs is not None:
        return None
    backend = coreml_backend(options.compute_units, native_coreml_available())
    return None if backend == "mil" else artifact.bounds_on(backend)


def _on_device(result: CheckResult, device) -> dict:
    """Each judged bound marked with the compute units it is for and how it was set."""
    return {
        metric: {**bound, "compute_units": device.compute_units, "basis": device.basis}
        for metric, bound in result.details.get("bounds", {}).items()
    }


def verify_paths(paths: list[Path], options: VerifyOptions) -> list[BundleReport]:
    """Verify each bundle; when an encoder and a personality bundle are both given, check pinning
    and every pipeline they form."""
    bundles = [open_bundle(path) for path in paths]
    reports = [verify_bundle(bundle, options) for bundle in bundles]
    consumed = _consumed_contracts()
    encoders = [(b, r) for b, r in zip(bundles, reports, strict=True) if b.registered.name in consumed]
    for bundle, report in zip(bundles, reports, strict=True):
        if not _consumes_an_encoder(bundle):
            continue
        if encoders:
            report.checks.extend(
                _pinning(bundle, report, encoder, encoder_report) for encoder, encoder_report in encoders
            )
        else:
            report.checks.append(
                skipped(
                    "encoder-pinning", "give the encoder bundle too (verify-contract ENCODER PERSONALITY)"
                )
            )
    reports += _pipelines(bundles, reports, options)
    return reports


def _pinning(
    bundle: Bundle, report: BundleReport, encoder: Bundle, encoder_report: BundleReport
) -> CheckResult:
    """Same fingerprint, and the personality goldens' inputs are exactly the encoder's golden outputs."""
    check = check_pinning(bundle, encoder)
    pipeline = next(
        p for p in PIPELINES.values() if p.contracts == (encoder.registered.name, bundle.registered.name)
    )
    if check.failed or report.golden is None or encoder_report.golden is None:
        return check
    problems = reference_problems(pipeline, [encoder_report.golden, report.golden])
    return verdict("encoder-pinning", problems, check.message)


def _consumed_contracts() -> set[str]:
    return {p.stages[0].contract for p in PIPELINES.values()}


def _consumes_an_encoder(bundle: Bundle) -> bool:
    return any(bundle.registered.name in p.contracts[1:] for p in PIPELINES.values())


def _pipelines(
    bundles: list[Bundle], reports: list[BundleReport], options: VerifyOptions
) -> list[BundleReport]:
    """One report per pipeline whose every model is among the bundles given."""
    by_name = {b.registered.name: (b, r) for b, r in zip(bundles, reports, strict=True)}
    results = []
    for pipeline in PIPELINES.values():
        if not all(name in by_name for name in pipeline.contracts):
            continue
        report = BundleReport(Path(pipeline.name), pipeline.name)
        results.append(report)
        if not options.numerics:
            report.checks.append(not_checked(pipeline, "numerics disabled (--no-numerics)"))
            continue
        if options.load_outputs is not None:
            report.checks.append(
                not_checked(pipeline, "stored runs hold each artifact alone (--load-outputs)")
            )
            continue
        stages = []
        for name in pipeline.contracts:
            bundle, bundle_report = by_name[name]
            if bundle_report.golden is None:
                break
            stages.append(
                StageInput(bundle_report.golden, _artifact_runner(bundle, options), bundle_report.runs)
            )
        if len(stages) < len(pipeline.stages):
            report.checks.append(
                not_checked(pipeline, "a bundle has no usable goldens (see its golden check)")
            )
            continue
        problems = reference_problems(pipeline, [stage.golden for stage in stages])
        report.checks.append(
            verdict(
                "pipeline/reference",
                problems,
                "goldens chain: texts → " + " → ".join(f"{s.contract}.{s.produces}" for s in pipeline.stages),
            )
        )
        if problems:
            continue
        shipped = _shipped(pipeline, options)
        combinations = dict.fromkeys([*pipeline.combinations, *shipped.values()])
        for artifacts in combinations:
            if options.only and not set(artifacts) <= set(options.only):
                continue
            targets = tuple(t for t, combo in shipped.items() if combo == artifacts)
            tolerances = pipeline.tolerances_for(artifacts)
            if targets:
                tolerances = with_budgets(tolerances, options.pipeline_budgets)
            batch_sizes = by_name[pipeline.contracts[0]][0].registered.golden_batch_sizes
            report.checks.append(
                check_pipeline(pipeline, artifacts, stages, batch_sizes, tolerances, targets)
            )
    return results


def _shipped(pipeline: PipelineContract, options: VerifyOptions) -> dict[str, tuple[str, ...]]:
    """The project's targets that ship every model of ``pipeline``, with their artifacts."""
    return {
        target: tuple(models[name] for name in pipeline.contracts)
        for target, models in options.ship.items()
        if all(name in models for name in pipeline.contracts)
    }


def _artifact_runner(bundle: Bundle, options: VerifyOptions):
    cache: dict[str, Runner] = {}

    def runner(key: str) -> Runner:
        if key not in cache:
            artifact = bundle.registered.artifact(key)
            path = bundle.path(artifact.filename)
            if not path.exists():
                raise FileNotFoundError(f"{artifact.filename} missing")
            cache[key] = _runner(artifact, bundle, path, options)
        return cache[key]

    return runner
