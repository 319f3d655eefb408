"""What machine the numbers come from: CPU, cores, memory, load, library versions, BLAS."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from contracts.environment import package_versions

LIBRARIES = (
    "torch",
    "onnxruntime",
    "onnx",
    "numpy",
    "coremltools",
    "transformers",
    "sentence-transformers",
    "tokenizers",
)
#: CPU flags that decide which GEMM kernels the libraries pick.
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8")


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _blas() -> str:
    try:
        import numpy  # noqa: F401  (loads its BLAS so threadpoolctl can see it)
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    return "; ".join(
        f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, "
        f"{p.get('num_threads')} threads)"
        for p in pools
    )


def versions() -> dict[str, str]:
    return package_versions(LIBRARIES)


def describe() -> dict[str, object]:
    cpu = _cpuinfo()
    flags = set(cpu.get("flags", "").split())
    return {
        "system": f"{platform.system()} {platform.release()}",
        "cpu": cpu.get("model name", platform.processor() or "unknown"),
        "cpu_flags": [f for f in FLAGS if f in flags],
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": _memory_gib(),
        "blas": _blas(),
        "versions": versions(),
    }
