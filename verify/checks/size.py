"""Size budgets: a compressed artifact against the same format's fp32 artifact."""

from __future__ import annotations

from pathlib import Path

from contracts import ArtifactSpec
from verify.result import CheckResult, failed, passed, skipped


def disk_size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return path.stat().st_size


def check_size(artifact: ArtifactSpec, path: Path, fp32_path: Path | None) -> CheckResult | None:
    """None for an artifact without a size budget: a check that cannot fail is not reported."""
    name = f"{artifact.key}/size"
    if artifact.max_size_ratio is None:
        return None
    size = disk_size(path)
    if fp32_path is None or not fp32_path.exists():
        return skipped(name, "no fp32 artifact to compare with", size_bytes=size)
    ratio = size / disk_size(fp32_path)
    message = f"{size / 1e6:.1f} MB = {ratio:.3f}x fp32 (budget {artifact.max_size_ratio}x)"
    if ratio > artifact.max_size_ratio:
        return failed(name, message, size_bytes=size, ratio=ratio)
    return passed(name, message, size_bytes=size, ratio=ratio)
