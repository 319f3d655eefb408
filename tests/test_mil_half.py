"""The fp16 emulation's casts (``verify.backends.mil.half``) give numpy's bits, faster."""

from __future__ import annotations

import numpy as np
import pytest

from verify.backends.mil import half


def _edge_values() -> np.ndarray:
    tiny = 2.0**-24  # the smallest fp16 subnormal
    edges: list[float] = [0.0, -0.0, tiny, tiny / 2, tiny * 1.5, tiny * 2.5]  # ties round to even
    edges += [2.0**-14, 2.0**-14 * (1 - 2.0**-11)]  # the smallest normal, the largest subnormal
    edges += [1.0, 1 + 2.0**-11, 1 + 3 * 2.0**-11, 65504.0, 65519.99, 65520.0, 1e6, np.inf, np.nan]
    values = np.array(edges + [-v for v in edges], dtype=np.float32)
    rng = np.random.default_rng(0)
    scales = np.float32(10.0) ** rng.integers(-9, 6, 1 << 14)
    spread = rng.standard_normal(1 << 14).astype(np.float32) * scales.astype(np.float32)
    return np.concatenate([values, spread])[: 1 << 14]


def test_float32_to_float16_and_back_is_numpys_bits() -> None:
    values = _edge_values()
    assert values.size >= half.MIN_ELEMENTS  # onnxruntime's kernel, not the fallback
    with np.errstate(over="ignore"):
        expected = values.astype(np.float16)
    got = half.cast(values, np.dtype(np.float16))
    assert got.dtype == np.float16 and got.shape == values.shape
    np.testing.assert_array_equal(got.view(np.uint16), expected.view(np.uint16))
    strided = expected.reshape(4, -1)[:, 1:]  # 2-D, not contiguous
    back = half.cast(strided, np.dtype(np.float32))
    np.testing.assert_array_equal(back.view(np.uint32), strided.astype(np.float32).view(np.uint32))


@pytest.mark.parametrize("dtype", [np.float64, np.int32])
def test_other_casts_are_numpys(dtype) -> None:
    values = np.arange(half.MIN_ELEMENTS * 2, dtype=np.float32) / 3
    np.testing.assert_array_equal(half.cast(values, np.dtype(dtype)), values.astype(dtype))
