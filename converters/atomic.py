"""Publish a finished bundle directory in one step: the old bundle stays until the new one is whole."""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2). False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return result == 0


def _publish(staging: Path, final: Path) -> None:
    if not final.exists():
        os.rename(staging, final)
        return
    if _exchange(staging, final):
        shutil.rmtree(staging)  # now holds the previous bundle
        return
    retired = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(final, retired)
    os.rename(staging, final)
    shutil.rmtree(retired)


def clear_stale_staging(final: Path) -> None:
    """Remove staging directories left by builds that were killed."""
    for leftover in final.parent.glob(f".{final.name}.build-*"):
        shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """Yield an empty staging directory beside ``final``; publish it only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    clear_stale_staging(final)
    staging = final.with_name(f".{final.name}.build-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _publish(staging, final)
