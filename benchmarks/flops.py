"""Matmul FLOPs of encoder_v1 and the machine's float32 GEMM rate (numpy sgemm).

Only the matrix products count (2 FLOPs per multiply-add): per layer and token the Q, K, V and
attention-output projections (4·d²) and the FFN (2·d·f), per layer and row the attention
products Q·Kᵀ and softmax·V (2·L²·d each, over all heads); the 384→1536 head once per row.
Embedding lookup, LayerNorm, softmax, GELU, pooling and normalisation are elementwise and left
out, so the FLOP rate derived from them is a slight underestimate of the work done.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

#: all-MiniLM-L6-v2 and the encoder_v1 head.
LAYERS, HIDDEN, FFN, EMBEDDING = 6, 384, 1536, 1536
#: Side of the square float32 matrices timed for the machine's GEMM rate.
GEMM_SIZE = 2048


def encoder_flops(batch_shapes: Iterable[tuple[int, int]]) -> int:
    """Matmul FLOPs of encoder_v1 over batches of (rows, padded length)."""
    total = 0
    for rows, length in batch_shapes:
        per_token = 2 * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN)
        attention = 2 * 2 * length * length * HIDDEN  # Q·Kᵀ and softmax·V, all heads
        total += LAYERS * rows * (length * per_token + attention)
        total += rows * 2 * HIDDEN * EMBEDDING
    return total


def gemm_flops(size: int = GEMM_SIZE) -> int:
    return 2 * size**3


def gemm_operands(size: int = GEMM_SIZE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((size, size), dtype=np.float32),
        rng.standard_normal((size, size), dtype=np.float32),
    )


def integer_gemm(size: int = GEMM_SIZE, signed_weights: bool = False, seed: int = 0):
    """A callable running onnxruntime's ``MatMulInteger`` on ``size``² uint8 activations and
    weights, uint8 with zero point 128 (the kernels the int8 recipe uses: exact on every x86 CPU)
    or int8 (u8s8, VNNI/AMX on CPUs that have them): the machine's integer GEMM rate."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight_type = np.int8 if signed_weights else np.uint8
    weights = rng.integers(-127 if signed_weights else 1, 128 if signed_weights else 256, (size, size))
    zero = np.array(0 if signed_weights else 128, weight_type)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "w", "a_zero", "w_zero"], ["y"])],
        "integer_gemm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [size, size])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [size, size])],
        [
            numpy_helper.from_array(weights.astype(weight_type), "w"),
            numpy_helper.from_array(np.array(128, np.uint8), "a_zero"),
            numpy_helper.from_array(zero, "w_zero"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    activations = rng.integers(0, 256, (size, size)).astype(np.uint8)
    return lambda: session.run(["y"], {"a": activations})


#: Side of the bf16 matmul: smaller, since CPUs without AVX512-BF16/AMX run it ~500x slower than
#: fp32 (0.3 GFLOP/s measured on an AVX2 EPYC at 2048: a minute per product).
BF16_GEMM_SIZE = 512


def bf16_gemm(size: int = BF16_GEMM_SIZE, seed: int = 0):
    """A callable running torch's bfloat16 matmul on ``size``² operands (AMX/AVX512-BF16 where the
    CPU has them, emulated otherwise); ``gemm_flops(size)`` FLOPs a call."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(size, size, generator=generator).to(torch.bfloat16)
    b = torch.randn(size, size, generator=generator).to(torch.bfloat16)
    return lambda: torch.matmul(a, b)
