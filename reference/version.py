"""A content hash of the reference code: goldens record it so stale ones can be detected."""

from __future__ import annotations

import hashlib
from pathlib import Path

_SOURCES = ("reference", "golden")


def reference_code_sha256() -> str:
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in _SOURCES:
        for path in sorted((root / package).glob("*.py")):
            digest.update(f"{package}/{path.name}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()
