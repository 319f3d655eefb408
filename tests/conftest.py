"""Shared fixtures: the default bundles are built once per test session, for real."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from contracts.environment import quiet_libraries  # noqa: E402

quiet_libraries()

# Hypothesis profiles for the fuzz tests (tests/test_fuzz.py, docs/FUZZING.md), picked by
# HYPOTHESIS_PROFILE (tox passes it through): "ci" (default) is derandomized, small and
# reproducible; "deep" draws fresh random examples, 20x as many, for local runs.
from hypothesis import settings  # noqa: E402

settings.register_profile(
    "ci", derandomize=True, max_examples=5, deadline=None, print_blob=True, database=None
)
settings.register_profile("deep", derandomize=False, max_examples=100, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def encoder():
    from reference import load_encoder

    return load_encoder()


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> Path:
    """``artifacts/`` with encoder_v1 and personality_v1, every artifact the contracts list."""
    from converters.bundle import BuildOptions, build_bundles

    output = tmp_path_factory.mktemp("artifacts")
    build_bundles(output, ("encoder_v1", "personality_v1"), BuildOptions())
    return output


@pytest.fixture
def copy_bundle(bundles, tmp_path):
    """A private, writable copy of one bundle for a test to break."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(bundles / name, target)
        return target

    return copy


@pytest.fixture(scope="session")
def verified(bundles, tmp_path_factory):
    """One full ``verify-contract`` of both default bundles, writing every report format: its exit
    code, stdout, report files and the BundleReports it made (the self-test reuses them)."""
    import contextlib
    import io

    import verify.verifier
    from verify.cli import main

    out = tmp_path_factory.mktemp("reports")
    files = {
        kind: out / name for kind, name in (("json", "r.json"), ("junit", "r.xml"), ("markdown", "r.md"))
    }
    files["html"] = out / "r.html"
    made: list = []
    real = verify.verifier.verify_paths

    def keep(*args, **kwargs):
        made.extend(real(*args, **kwargs))
        return made

    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(stdout):
        patch.setattr(verify.verifier, "verify_paths", keep)  # the CLI imports it at call time
        flags = [f"--{kind}={path}" for kind, path in files.items()]
        code = main([str(bundles / "encoder_v1"), str(bundles / "personality_v1"), *flags])
    return code, stdout.getvalue(), files, made


@pytest.fixture
def reports(verified):
    code, out, files, _ = verified
    return code, out, files
