"""A content hash of the reference code: goldens record it so stale ones can be detected."""

from contracts.hashing import reference_code_sha256

__all__ = ["reference_code_sha256"]
