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
