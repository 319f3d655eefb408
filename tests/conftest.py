"""Shared fixtures: the default bundles are built once per test session, for real."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers on two cores: one thread each, no oversubscription
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

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


def shared_directory(tmp_path_factory) -> Path:
    """This run's temporary directory, shared by its pytest-xdist workers (each has its own below)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> Path:
    """``artifacts/`` with encoder_v1 and personality_v1, every artifact the contracts list: built
    once per run, by the first worker that needs it; tests break copies of it, never it."""
    from filelock import FileLock

    from converters.bundle import BuildOptions, build_bundles

    shared = shared_directory(tmp_path_factory)
    output, done = shared / "artifacts", shared / "artifacts.done"
    with FileLock(str(shared / "artifacts.lock")):
        if not done.exists():
            build_bundles(output, ("encoder_v1", "personality_v1"), BuildOptions())
            done.touch()
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
    code, stdout, report files and the BundleReports it made (the self-test reuses them). Run once
    per run; pytest-xdist workers share it through a pickle beside the shared bundles."""
    import pickle

    from filelock import FileLock

    shared = shared_directory(tmp_path_factory)
    cached = shared / "verified.pickle"
    with FileLock(str(shared / "verified.lock")):
        if not cached.exists():
            cached.write_bytes(pickle.dumps(_verify_default_bundles(bundles, shared / "reports")))
        return pickle.loads(cached.read_bytes())


def _verify_default_bundles(bundles: Path, out: Path):
    import contextlib
    import io

    import verify.verifier
    from verify.cli import main

    out.mkdir()
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


def pytest_collection_modifyitems(items):
    """Tests that need no built bundles first (stable within each group): under pytest-xdist one
    worker builds the shared bundles while the other runs them, instead of waiting for the build."""
    items.sort(key=lambda item: "bundles" in item.fixturenames)
