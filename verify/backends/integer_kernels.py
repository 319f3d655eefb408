"""Run portable int8 ONNX models on the fast u8s8 kernels, where those are exact.

The int8 artifacts store symmetric int8 weight codes as uint8 with zero point 128 ("u8u8"), so
that onnxruntime's integer GEMMs give exact int32 sums on every x86 CPU (u8s8 saturates through
``vpmaddubsw`` on CPUs without VNNI; docs/QUANTIZATION.md). On CPUs with VNNI or AMX, u8s8 is
exact too (``vpdpbusd`` and AMX ``tdpbusd`` accumulate in int32) and several times faster: on a
Sapphire Rapids core, 759 GOP/s against 132 for u8u8 at 2048³ (docs/BENCHMARKS.md).

:func:`sign_weights` rewrites such a model in memory: each weight code ``c`` stored as
``c + 128`` becomes the int8 ``c`` with zero point 0. The integer products are the same numbers,
so outputs are bit-identical on a CPU where both kernels are exact; the verifier proves that on
the goldens whenever it runs the rewritten model (``*/integer-kernels``). The file on disk, and
so what ships, does not change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: Integer GEMMs and the input indices of (weights, weight zero point).
_GEMMS = {"MatMulInteger": (1, 3), "DynamicQuantizeMatMul": (1, 3), "MatMulIntegerToFloat": (1, 5)}
#: CPU flags (Linux ``/proc/cpuinfo``) of instructions that sum uint8 x int8 products exactly in
#: int32. Every AMX CPU also has AVX512-VNNI, which onnxruntime uses where AMX is unavailable.
EXACT_U8S8_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})
PORTABLE, FASTEST = "portable", "fastest"
KERNEL_CHOICES = (PORTABLE, FASTEST)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first CPU's flags; empty where there is no ``/proc/cpuinfo`` (macOS, Windows)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def exact_u8s8(flags: frozenset[str] | None = None) -> bool:
    """Whether onnxruntime's u8s8 kernels sum exactly on this CPU."""
    return bool(EXACT_U8S8_FLAGS & (cpu_flags() if flags is None else flags))


def sign_weights(model: Any) -> int:
    """Rewrite ``model`` (an ``onnx.ModelProto``) in place: every integer GEMM weight stored as
    uint8 codes with zero point 128 becomes int8 with zero point 0. A weight or zero point that
    any other node or input slot also reads, or a zero point that is not 128 throughout, is left
    alone. Returns the number of GEMMs rewritten."""
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    uses: dict[str, set[str]] = {}  # initializer -> the roles it is read in
    gemms = []
    for node in graph.node:
        slots = _GEMMS.get(node.op_type)
        pair = (node.input[slots[0]], node.input[slots[1]]) if slots and len(node.input) > slots[1] else None
        if pair is not None:
            gemms.append(pair)
        for index, name in enumerate(node.input):
            role = "other"
            if pair is not None and slots is not None and index in slots:
                role = "weight" if index == slots[0] else "zero"
            uses.setdefault(name, set()).add(role)

    def portable(weight: str, zero: str) -> bool:
        w, z = initializers.get(weight), initializers.get(zero)
        return (
            w is not None
            and z is not None
            and uses[weight] == {"weight"}
            and uses[zero] == {"zero"}
            and w.data_type == TensorProto.UINT8
            and z.data_type == TensorProto.UINT8
            and bool(np.all(numpy_helper.to_array(z) == 128))
        )

    chosen = [(weight, zero) for weight, zero in gemms if portable(weight, zero)]
    rewritten: dict[str, Any] = {}
    for weight, zero in chosen:
        if weight not in rewritten:
            codes = numpy_helper.to_array(initializers[weight]).astype(np.int16) - 128
            rewritten[weight] = numpy_helper.from_array(codes.astype(np.int8), weight)
        if zero not in rewritten:
            zeros = np.zeros(numpy_helper.to_array(initializers[zero]).shape, np.int8)
            rewritten[zero] = numpy_helper.from_array(zeros, zero)
    for initializer in graph.initializer:
        if initializer.name in rewritten:
            initializer.CopyFrom(rewritten[initializer.name])
    return len(chosen)


def fast_model_bytes(path: Path, flags: frozenset[str] | None = None) -> bytes | None:
    """The model at ``path`` with signed weights, serialised, when this CPU's u8s8 kernels are
    exact and the model has portable integer GEMMs; else None (run the file as it is)."""
    if not exact_u8s8(flags):
        return None
    import onnx

    model = onnx.load(str(path))
    if not any(node.op_type in _GEMMS for node in model.graph.node):
        return None
    return model.SerializeToString() if sign_weights(model) else None
