"""verify-contract --self-test: every mutant of the default bundles is caught, by the check
meant for it, and the clean bundles pass; a surviving mutant fails the self-test."""

from __future__ import annotations

import pytest

from tests.helpers import run_verify
from verify.selftest.mutants import MUTANTS, Mutant

pytestmark = pytest.mark.slow


def test_every_mutant_is_caught_by_its_check(bundles, verified):
    from verify.selftest.run import self_test

    clean = verified[3]  # the full verification the report tests made of the same bundles
    result = self_test([bundles / "encoder_v1", bundles / "personality_v1"], clean=clean)
    assert not any(r.failed for r in result.clean)
    assert [o.mutant.name for o in result.outcomes] == [m.name for m in MUTANTS]
    missed = {o.mutant.name: (o.error, o.failing) for o in result.outcomes if not o.caught_as_expected}
    assert missed == {}
    assert result.passed


def test_required_mutants_are_present():
    names = " ".join(m.name for m in MUTANTS)
    for required in (
        "onnx-fp32 weight",
        "coreml-fp32 weight",
        "updatable head weight",
        "token order swapped",
        "batch range 1..32",
        "metadata key missing",
        "metadata value wrong",
        "extra updatable layer",
        "final L2 normalisation dropped",
        "fp16 overflow",
        "stale golden",
        "tampered manifest hash",
        "tokenizer vocabulary entries swapped",
        "golden texts swapped",
        "not unit norm",
        "GELU switched to tanh",  # issue 13 class 2: graph signature
        "weight 25 -> -127, content rehashed",  # class 1: self-goldens
        "embedding space moved",  # class 4: pinning by golden content
    ):
        assert required in names


def test_a_surviving_mutant_fails_the_self_test(bundles, capsys, monkeypatch):
    import verify.selftest.run

    harmless = Mutant("touch nothing", "personality_v1", "manifest", lambda bundle: None, numerics=False)
    monkeypatch.setattr(verify.selftest.run, "MUTANTS", (harmless,))
    code, out, _ = run_verify(capsys, bundles / "personality_v1", "--self-test")
    assert code == 1
    assert "0/1 mutants caught" in out and "survived" in out


def test_a_catch_by_another_check_fails_the_self_test(bundles, capsys, monkeypatch):
    """The intended check may be broken while another one catches the mutant: not a pass."""
    import verify.selftest.run
    from verify.selftest.mutants import MUTANTS

    stale = next(m for m in MUTANTS if m.expected == "golden" and m.contract == "personality_v1")
    mislabelled = Mutant(stale.name, stale.contract, "manifest", stale.apply, numerics=False)
    monkeypatch.setattr(verify.selftest.run, "MUTANTS", (mislabelled,))
    code, out, _ = run_verify(capsys, bundles / "personality_v1", "--self-test")
    assert code == 1
    assert "1/1 mutants caught, 0 by the check meant for them" in out and "caught by another check" in out
