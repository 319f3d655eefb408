"""``verify-contract --self-test``: verify the clean bundles, then a mutant of them per known way
of breaking a bundle; every mutant must be caught."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from verify.bundle import Bundle, open_bundle
from verify.selftest.mutants import MUTANTS, Mutant, rehash_manifest
from verify.verifier import BundleReport, VerifyOptions, verify_bundle, verify_paths


@dataclass
class MutantOutcome:
    mutant: Mutant
    failing: list[str] = field(default_factory=list)
    error: str | None = None  # the mutation itself could not be applied
    seconds: float = 0.0

    @property
    def caught(self) -> bool:
        return self.error is None and bool(self.failing)

    @property
    def caught_as_expected(self) -> bool:
        return self.caught and self.mutant.expected in self.failing


@dataclass
class SelfTestResult:
    clean: list[BundleReport]
    outcomes: list[MutantOutcome]

    @property
    def passed(self) -> bool:
        """Clean bundles pass and every mutant is caught by the check meant for it: a catch by
        another check would hide that the intended check is broken."""
        return not any(r.failed for r in self.clean) and all(o.caught_as_expected for o in self.outcomes)


def run_mutant(
    mutant: Mutant, bundle: Bundle, scratch: Path, alongside: tuple[Bundle, ...] = ()
) -> MutantOutcome:
    start = time.perf_counter()
    copy = scratch / bundle.root.name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(bundle.root, copy, symlinks=True)
    try:
        mutant.apply(copy)
        if mutant.rehash:
            rehash_manifest(copy, contents=mutant.careful)
    except Exception as exc:  # a mutant that cannot be built is a self-test failure, not a catch
        return MutantOutcome(mutant, error=f"{type(exc).__name__}: {exc}")
    options = VerifyOptions(numerics=mutant.numerics, only=mutant.only, explain_failures=False)
    if alongside:  # checks across bundles (pinning) run only when they are verified together
        reports = verify_paths([copy, *(b.root for b in alongside)], options)
    else:
        reports = [verify_bundle(open_bundle(copy), options)]
    shutil.rmtree(copy, ignore_errors=True)
    failing = [c.name for report in reports for c in report.failed]
    return MutantOutcome(mutant, failing, seconds=time.perf_counter() - start)


def self_test(
    paths: list[Path],
    log: Callable[[str], None] = lambda _: None,
    clean: list[BundleReport] | None = None,
) -> SelfTestResult:
    """Clean verification of ``paths`` (or ``clean``, their reports from a verification already
    run), then every mutant whose contract is among them."""
    if clean is None:
        log("verifying the clean bundles")
        clean = verify_paths(paths, VerifyOptions())
    bundles = {bundle.name: bundle for bundle in map(open_bundle, paths)}
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="verify-self-test-") as scratch:
        for mutant in MUTANTS:
            if mutant.contract not in bundles or not set(mutant.alongside) <= set(bundles):
                continue
            alongside = tuple(bundles[name] for name in mutant.alongside)
            outcome = run_mutant(mutant, bundles[mutant.contract], Path(scratch), alongside)
            verdict = "caught" if outcome.caught else "SURVIVED"
            log(f"mutant {mutant.name!r} on {mutant.contract}: {verdict} ({outcome.seconds:.1f} s)")
            outcomes.append(outcome)
    return SelfTestResult(clean, outcomes)
