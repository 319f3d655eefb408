"""The numpy ML Program executor (verify.backends.mil): per-op semantics, real programs, tamper detection."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import coremltools as ct
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from coremltools.converters.mil import Builder as mb  # noqa: N813 - the name coremltools uses
from coremltools.converters.mil.mil import types
from coremltools.converters.mil.mil.ops.defs._utils import compute_gather

from verify.backends.mil import REGISTRY, MILExecutionError, MILProgramExecutor, OpContext, UnsupportedOpError
from verify.backends.mil.ops import IOS16, IOS17, IOS18

ATOL = 1e-5
RNG = np.random.default_rng(20240601)

#: Op inventories probed from the converted programs.
ENCODER_OPS = {
    "add", "cast", "clip", "concat", "equal", "expand_dims", "gather", "gelu", "greater_equal",
    "layer_norm", "linear", "matmul", "maximum", "mul", "real_div", "reduce_l2_norm", "reduce_sum",
    "reshape", "select", "shape", "slice_by_index", "softmax", "sub", "tile", "transpose",
}  # fmt: skip
PERSONALITY_OPS = {
    "add", "expand_dims", "gelu", "layer_norm", "linear", "matmul", "mul", "reshape", "softmax",
    "squeeze", "transpose",
}  # fmt: skip


def _ctx(op_type: str, opset: int = IOS17) -> OpContext:
    return OpContext(op_type, f"test_{op_type}", opset)


def _f32(*shape: int, scale: float = 1.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


def _convert_mil(prog, path: Path, target=None, precision=None) -> Path:
    model = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=target or ct.target.iOS17,
        compute_precision=precision or ct.precision.FLOAT32,
        # keep the ops exactly as built; FLOAT16 needs the default pipeline (it inserts the casts)
        pass_pipeline=ct.PassPipeline.EMPTY if precision is None else ct.PassPipeline.DEFAULT,
    )
    model.save(str(path))
    return path


# =============================================================================================
# Per-op semantics: every registered op, called directly, against torch / numpy / hand values.

X = _f32(2, 3, 4)
Y = _f32(2, 3, 4)
ROW = _f32(3, 1)
POS = np.abs(_f32(2, 3, 4)) + np.float32(0.1)
BIG = _f32(4, 5, scale=3.0)
I1 = np.array([7, -7, 6, -6, 9], np.int32)
I2 = np.array([2, 2, -4, 4, 3], np.int32)
BOOL_A = X > 0
BOOL_B = Y > 0


def _np(fn):
    return lambda *a, **k: fn(*[_t(x) for x in a], **k).numpy()


# (op, case id, inputs, expected); opset defaults to iOS17.
CASES: list[tuple[str, str, dict, object]] = [
    ("add", "bcast", {"x": X, "y": ROW}, _np(torch.add)(X, ROW)),
    ("add", "int", {"x": I1, "y": np.int32(3)}, I1 + 3),
    ("sub", "bcast", {"x": X, "y": ROW}, _np(torch.sub)(X, ROW)),
    ("mul", "scalar", {"x": X, "y": np.float32(-1e4)}, X * np.float32(-1e4)),
    ("maximum", "bcast", {"x": X, "y": ROW}, _np(torch.maximum)(X, np.broadcast_to(ROW, X.shape))),
    ("minimum", "bcast", {"x": X, "y": ROW}, _np(torch.minimum)(X, np.broadcast_to(ROW, X.shape))),
    ("pow", "pos", {"x": POS, "y": np.float32(1.5)}, _np(torch.pow)(POS, 1.5)),
    ("equal", "int", {"x": I1, "y": np.int32(-7)}, I1 == -7),
    ("not_equal", "int", {"x": I1, "y": np.int32(-7)}, I1 != -7),
    ("greater", "f", {"x": X, "y": Y}, _np(torch.gt)(X, Y)),
    ("greater_equal", "int", {"x": I1, "y": np.int32(6)}, I1 >= 6),
    ("less", "f", {"x": X, "y": Y}, _np(torch.lt)(X, Y)),
    ("less_equal", "int", {"x": I1, "y": np.int32(6)}, I1 <= 6),
    ("logical_and", "b", {"x": BOOL_A, "y": BOOL_B}, _np(torch.logical_and)(BOOL_A, BOOL_B)),
    ("logical_or", "b", {"x": BOOL_A, "y": BOOL_B}, _np(torch.logical_or)(BOOL_A, BOOL_B)),
    ("logical_not", "b", {"x": BOOL_A}, ~BOOL_A),
    ("real_div", "float", {"x": X, "y": POS}, _np(torch.div)(X, POS)),
    # MIL real_div on int32 (ML Program): true division truncated toward zero, int32 result.
    ("real_div", "int", {"x": I1, "y": I2}, np.array([3, -3, -1, -1, 3], np.int32)),
    ("floor_div", "int", {"x": I1, "y": I2}, np.array([3, -4, -2, -2, 3], np.int32)),
    ("floor_div", "float", {"x": X, "y": POS}, np.floor(X / POS)),
    ("erf", "wide", {"x": BIG}, _np(torch.erf)(BIG.astype(np.float64))),
    ("gelu", "EXACT", {"x": BIG, "mode": "EXACT"}, _np(F.gelu)(BIG.astype(np.float64))),
    (
        "gelu",
        "TANH_APPROXIMATION",
        {"x": BIG, "mode": "TANH_APPROXIMATION"},
        _np(lambda x: F.gelu(x, approximate="tanh"))(BIG.astype(np.float64)),
    ),
    (
        "gelu",
        "SIGMOID_APPROXIMATION",
        {"x": BIG, "mode": "SIGMOID_APPROXIMATION"},
        _np(lambda x: x * torch.sigmoid(1.702 * x))(BIG.astype(np.float64)),
    ),
    ("sigmoid", "f", {"x": BIG}, _np(torch.sigmoid)(BIG)),
    ("silu", "f", {"x": BIG}, _np(F.silu)(BIG)),
    ("relu", "f", {"x": BIG}, _np(torch.relu)(BIG)),
    ("tanh", "f", {"x": BIG}, _np(torch.tanh)(BIG)),
    ("exp", "f", {"x": X}, _np(torch.exp)(X)),
    ("sqrt", "f", {"x": POS}, _np(torch.sqrt)(POS)),
    ("rsqrt", "default_eps", {"x": POS}, _np(torch.rsqrt)(POS.astype(np.float64) + 1e-12)),
    ("rsqrt", "eps", {"x": POS, "epsilon": np.float32(0.5)}, _np(torch.rsqrt)(POS + np.float32(0.5))),
    ("log", "default_eps", {"x": POS}, _np(torch.log)(POS)),
    ("log", "eps", {"x": POS, "epsilon": np.float32(1.0)}, _np(torch.log)(POS + np.float32(1.0))),
    ("inverse", "default_eps", {"x": POS}, 1.0 / (POS.astype(np.float64) + 1e-4)),
    ("abs", "f", {"x": X}, np.abs(X)),
    ("square", "f", {"x": X}, np.square(X)),
    ("clip", "f", {"x": BIG, "alpha": np.float32(-1.0), "beta": np.float32(2.0)}, np.clip(BIG, -1.0, 2.0)),
    ("cast", "fp32_int32", {"x": np.array([1.7, -1.7, 2.0], np.float32), "dtype": "int32"}, [1, -1, 2]),
    ("cast", "fp32_fp16", {"x": X, "dtype": "fp16"}, X.astype(np.float16)),
    ("cast", "int32_uint16", {"x": np.array([101, 30521], np.int32), "dtype": "uint16"}, [101, 30521]),
    ("cast", "int32_bool", {"x": np.array([0, 3], np.int32), "dtype": "bool"}, [False, True]),
    ("reduce_sum", "axes1", {"x": X, "axes": np.array([1], np.int32)}, X.sum(1)),
    (
        "reduce_sum",
        "keep",
        {"x": X, "axes": np.array([-1], np.int32), "keep_dims": True},
        X.sum(-1, keepdims=True),
    ),
    ("reduce_sum", "all", {"x": X}, X.sum()),
    ("reduce_mean", "axes", {"x": X, "axes": np.array([0, 2], np.int32)}, X.mean((0, 2))),
    (
        "reduce_max",
        "keep",
        {"x": X, "axes": np.array([1], np.int32), "keep_dims": True},
        X.max(1, keepdims=True),
    ),
    ("reduce_min", "axes", {"x": X, "axes": np.array([2], np.int32)}, X.min(2)),
    (
        "reduce_l2_norm",
        "keep",
        {"x": X, "axes": np.array([1], np.int32), "keep_dims": True},
        _np(lambda x: torch.linalg.vector_norm(x, dim=1, keepdim=True))(X),
    ),
    ("reduce_argmax", "axis", {"x": X, "axis": np.int32(1)}, _np(lambda x: torch.argmax(x, 1))(X)),
    (
        "reduce_argmax",
        "keep",
        {"x": X, "axis": np.int32(-1), "keep_dims": True},
        _np(lambda x: torch.argmax(x, -1, keepdim=True))(X),
    ),
    ("reduce_argmin", "axis", {"x": X, "axis": np.int32(1)}, _np(lambda x: torch.argmin(x, 1))(X)),
]

W = _f32(5, 4)
B5 = _f32(5)
Q4 = _f32(2, 3, 6, 8)
K4 = _f32(2, 3, 6, 8)
CASES += [
    ("linear", "bias", {"x": X, "weight": W, "bias": B5}, _np(F.linear)(X, W, B5)),
    ("linear", "nobias", {"x": X[0], "weight": W}, _np(F.linear)(X[0], W)),
    ("matmul", "plain", {"x": X, "y": W.T.copy()}, _np(torch.matmul)(X, W.T.copy())),
    (
        "matmul",
        "transpose_y",
        {"x": Q4, "y": K4, "transpose_y": True},
        _np(lambda a, b: a @ b.transpose(-1, -2))(Q4, K4),
    ),
    (
        "matmul",
        "transpose_x",
        {"x": Q4, "y": K4, "transpose_x": True},
        _np(lambda a, b: a.transpose(-1, -2) @ b)(Q4, K4),
    ),
    ("matmul", "bcast", {"x": Q4, "y": K4[0, 0].T.copy()}, _np(torch.matmul)(Q4, K4[0, 0].T.copy())),
    ("matmul", "vec", {"x": X[0, 0], "y": W.T.copy()}, _np(torch.matmul)(X[0, 0], W.T.copy())),
    ("softmax", "last", {"x": BIG, "axis": np.int32(-1)}, _np(lambda x: torch.softmax(x, -1))(BIG)),
    ("softmax", "axis0", {"x": BIG, "axis": np.int32(0)}, _np(lambda x: torch.softmax(x, 0))(BIG)),
]

G4, B4 = _f32(4), _f32(4)
G34, B34 = _f32(3, 4), _f32(3, 4)


def _ln64(x: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    x = x.astype(np.float64)
    c = x - x.mean(axes, keepdims=True)
    return c / np.sqrt((c * c).mean(axes, keepdims=True) + eps)


CASES += [
    (
        "layer_norm",
        "last",
        {"x": X, "axes": np.array([-1], np.int32), "gamma": G4, "beta": B4, "epsilon": np.float32(1e-12)},
        _np(lambda x, g, b: F.layer_norm(x, (4,), g, b, eps=1e-12))(X, G4, B4),
    ),
    (
        "layer_norm",
        "last2",
        {
            "x": X,
            "axes": np.array([-2, -1], np.int32),
            "gamma": G34,
            "beta": B34,
            "epsilon": np.float32(1e-5),
        },
        _np(lambda x, g, b: F.layer_norm(x, (3, 4), g, b, eps=1e-5))(X, G34, B34),
    ),
    ("layer_norm", "axis0_nogamma", {"x": X, "axes": np.array([0], np.int32)}, _ln64(X, (0,), 1e-5)),
    (
        "layer_norm",
        "big_eps",
        {"x": X, "axes": np.array([-1], np.int32), "epsilon": np.float32(1.0)},
        _ln64(X, (2,), 1.0),
    ),
    ("shape", "3d", {"x": X}, np.array([2, 3, 4], np.int32)),
    ("reshape", "neg1", {"x": X, "shape": np.array([2, -1], np.int32)}, X.reshape(2, 12)),
    ("reshape", "zero_iOS17", {"x": X, "shape": np.array([0, 6, 2], np.int32)}, X.reshape(2, 6, 2)),
    ("transpose", "neg_perm", {"x": X, "perm": np.array([0, -1, -2], np.int32)}, X.transpose(0, 2, 1)),
    ("expand_dims", "two", {"x": X, "axes": np.array([0, -1], np.int32)}, X.reshape(1, 2, 3, 4, 1)),
    ("expand_dims", "mid", {"x": X, "axes": np.array([2], np.int32)}, X.reshape(2, 3, 1, 4)),
    ("squeeze", "axes", {"x": X[:, :1], "axes": np.array([1], np.int32)}, X[:, 0]),
    ("squeeze", "all", {"x": X[:1, :, :1]}, X[0, :, 0]),
    # MIL keeps a listed axis whose size is not 1 (iOS15 squeeze type inference)
    ("squeeze", "non_1_axis", {"x": X[:1], "axes": np.array([0, 1], np.int32)}, X[0]),
    ("identity", "plain", {"x": X}, X),
    ("concat", "axis1", {"values": (X, Y[:, :2]), "axis": np.int32(1)}, np.concatenate([X, Y[:, :2]], 1)),
    (
        "concat",
        "scalars",
        {"values": (np.int32(2), np.array(5, np.int32), np.int32(-1)), "axis": np.int32(0)},
        np.array([2, 5, -1], np.int32),
    ),
    (
        "concat",
        "interleave",
        {
            "values": (np.array([[1, 2], [3, 4]]), np.array([[5, 6], [7, 8]])),
            "axis": np.int32(0),
            "interleave": True,
        },
        np.array([[1, 2], [5, 6], [3, 4], [7, 8]]),
    ),
    ("tile", "reps", {"x": ROW, "reps": np.array([2, 3], np.int32)}, np.tile(ROW, (2, 3))),
    ("select", "bcast", {"cond": BOOL_A, "a": X, "b": np.float32(0)}, np.where(BOOL_A, X, 0)),
    (
        "slice_by_index",
        "stride",
        {
            "x": X,
            "begin": np.array([0, 1, 0], np.int32),
            "end": np.array([2, 3, 4], np.int32),
            "stride": np.array([1, 1, 2], np.int32),
        },
        X[0:2, 1:3, 0:4:2],
    ),
    (
        "slice_by_index",
        "masks",
        {
            "x": X,
            "begin": np.array([1, 2, 1], np.int32),
            "end": np.array([0, 0, 3], np.int32),
            "begin_mask": np.array([True, False, False]),
            "end_mask": np.array([False, True, False]),
        },
        X[:0, 2:, 1:3],
    ),
    (
        "slice_by_index",
        "squeeze",
        {
            "x": X,
            "begin": np.array([1, 0, -1], np.int32),
            "end": np.array([2, 3, 0], np.int32),
            "squeeze_mask": np.array([True, False, True]),
        },
        X[1, 0:3, -1],
    ),
    (
        "slice_by_index",
        "neg_stride",
        {
            "x": X,
            "begin": np.array([0, 0, 3], np.int32),
            "end": np.array([2, 3, 0], np.int32),
            "stride": np.array([1, 1, -1], np.int32),
            "begin_mask": np.array([True, True, False]),
            "end_mask": np.array([True, True, True]),
        },
        X[:, :, 3::-1],
    ),
]

TABLE = _f32(10, 4)
IDX = np.array([[0, 9, 3], [4, 4, 1]], np.int32)
BX = _f32(2, 3, 5, 4)
BIDX = np.array([[0, 4], [2, 2]], np.int32)
CASES += [
    ("gather", "axis0", {"x": TABLE, "indices": IDX}, TABLE[IDX]),
    (
        "gather",
        "uint16",
        {"x": TABLE.astype(np.float16), "indices": IDX.astype(np.uint16)},
        TABLE.astype(np.float16)[IDX],
    ),
    ("gather", "scalar", {"x": np.array([64, 37], np.int32), "indices": np.int32(1)}, np.int32(37)),
    (
        "gather",
        "axis1",
        {"x": TABLE, "indices": np.array([3, 0], np.int32), "axis": np.int32(1)},
        TABLE[:, [3, 0]],
    ),
    (
        "gather",
        "batch_dims1_axis2",
        {"x": BX, "indices": BIDX, "axis": np.int32(2), "batch_dims": np.int32(1)},
        compute_gather(BX, BIDX, 2, 1),
    ),
    (
        "gather",
        "batch_dims1_axis1",
        {
            "x": BX,
            "indices": np.array([[0, 2, 1], [1, 1, 0]], np.int32),
            "axis": np.int32(1),
            "batch_dims": np.int32(1),
        },
        compute_gather(BX, np.array([[0, 2, 1], [1, 1, 0]], np.int32), 1, 1),
    ),
]

# Compressed weights: hand-computed expectations.
QDATA = np.array([[-128, 0, 127], [5, -5, 10]], np.int8)
CASES += [
    (
        "constexpr_affine_dequantize",
        "per_channel",
        {
            "quantized_data": QDATA,
            "zero_point": np.array([0, 5], np.int8),
            "scale": np.array([0.5, 0.25], np.float32),
            "axis": np.int32(0),
        },
        np.array([[-64.0, 0.0, 63.5], [0.0, -2.5, 1.25]], np.float32),
    ),
    (
        "constexpr_affine_dequantize",
        "axis1_scalar_zp",
        {
            "quantized_data": QDATA,
            "zero_point": np.int8(1),
            "scale": np.array([1.0, 2.0, 4.0], np.float32),
            "axis": np.int32(1),
        },
        np.array([[-129.0, -2.0, 504.0], [4.0, -12.0, 36.0]], np.float32),
    ),
    (
        "constexpr_blockwise_shift_scale",
        "blocks",
        {
            "data": np.array([[1, 2, 3, 4], [-1, -2, -3, -4]], np.int8),
            "scale": np.array([[2.0, 0.5], [1.0, 10.0]], np.float32),
            "offset": np.array([[1, 0], [0, -4]], np.int8),
        },
        np.array([[0.0, 2.0, 1.5, 2.0], [-1.0, -2.0, 10.0, 0.0]], np.float32),
    ),
    (
        "constexpr_blockwise_shift_scale",
        "no_offset",
        {"data": np.array([[1, 2], [3, 4]], np.int8), "scale": np.array([[0.5], [2.0]], np.float32)},
        np.array([[0.5, 1.0], [6.0, 8.0]], np.float32),
    ),
    (
        "constexpr_lut_to_dense",
        "iOS18_grouped",
        # two 2-bit LUTs (rows 0-1 and rows 2-3), scalar entries
        {
            "indices": np.array([[2, 3], [0, 1], [3, 0], [1, 2]], np.uint8),
            "lut": np.array([1.0, 5.0, 9.0, 13.0, 2.0, 10.0, 18.0, 26.0], np.float16).reshape(2, 1, 4, 1),
        },
        np.array([[9, 13], [1, 5], [26, 2], [10, 18]], np.float16),
    ),
    (
        "constexpr_lut_to_dense",
        "iOS18_vector",
        {
            "indices": np.array([[0, 1], [1, 1]], np.uint8),
            "lut": np.array([[1.0, 2.0], [3.0, 4.0]], np.float32).reshape(1, 1, 2, 2),
            "vector_axis": np.int32(1),
        },
        np.array([[1, 2, 3, 4], [3, 4, 3, 4]], np.float32),
    ),
    (
        "constexpr_lut_to_dense",
        "iOS16_packed",
        # 2-bit indices [1, 2, 3, 0, 3] packed LSB first: 0b00_11_10_01, 0b000000_11
        {
            "indices": np.array([0b00111001, 0b00000011], np.uint8),
            "lut": np.array([0.0, 1.5, -2.0, 7.0], np.float32),
            "shape": np.array([5], np.uint32),
        },
        np.array([1.5, -2.0, 7.0, 0.0, 7.0], np.float32),
    ),
    (
        "constexpr_cast",
        "fp16_fp32",
        {"source_val": X.astype(np.float16), "output_dtype": "fp32"},
        X.astype(np.float16),
    ),
]

_TOL = {"erf": 5e-7, "gelu": 3e-6}


@pytest.mark.parametrize(
    ("op", "inputs", "expected"),
    [pytest.param(op, inputs, expected, id=f"{op}-{cid}") for op, cid, inputs, expected in CASES],
)
def test_op_semantics(op: str, inputs: dict, expected) -> None:
    result = np.asarray(REGISTRY[op](_ctx(op), **inputs))
    expected = np.asarray(expected)
    assert result.shape == expected.shape
    if expected.dtype == np.bool_ or np.issubdtype(expected.dtype, np.integer):
        np.testing.assert_array_equal(result, expected)
    else:
        atol = _TOL.get(op, ATOL if result.dtype != np.float16 else 0)
        np.testing.assert_allclose(
            result.astype(np.float64), expected.astype(np.float64), rtol=1e-5, atol=atol
        )


def test_every_registered_op_has_a_case() -> None:
    assert set(REGISTRY) == {c[0] for c in CASES}


def test_attributes_change_results() -> None:
    """Each semantic attribute is honoured: changing it moves the result."""
    gelu = {
        m: REGISTRY["gelu"](_ctx("gelu"), x=BIG, mode=m)
        for m in ("EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION")
    }
    assert np.abs(gelu["EXACT"] - gelu["TANH_APPROXIMATION"]).max() > 1e-4
    assert np.abs(gelu["EXACT"] - gelu["SIGMOID_APPROXIMATION"]).max() > 1e-3
    axes = np.array([-1], np.int32)
    ln = [
        REGISTRY["layer_norm"](_ctx("layer_norm"), x=X, axes=axes, epsilon=np.float32(e))
        for e in (1e-12, 1e-2)
    ]
    assert np.abs(ln[0] - ln[1]).max() > 1e-3
    with pytest.raises(ValueError):
        REGISTRY["gelu"](_ctx("gelu"), x=BIG, mode="FAST")


@pytest.mark.parametrize(
    ("op", "inputs"),
    [
        ("softmax", {"x": (8, 12, 128, 128), "axis": -1}),
        (
            "layer_norm",
            {"x": (8, 128, 384), "axes": np.array([-1], np.int32), "gamma": (384,), "beta": (384,)},
        ),
        ("matmul", {"x": (8, 12, 128, 32), "y": (8, 12, 32, 128)}),
    ],
)
def test_ops_shared_over_threads_are_bit_identical_to_one_thread(op: str, inputs: dict, monkeypatch) -> None:
    """Large ops split their rows over threads (``mil.parallel``); no bit may move."""
    from verify.backends.mil import parallel

    rng = np.random.default_rng(0)
    arrays = {
        k: rng.standard_normal(v, dtype=np.float32) if isinstance(v, tuple) else v for k, v in inputs.items()
    }
    threaded = REGISTRY[op](_ctx(op), **arrays)
    assert parallel.WORKERS < 2 or parallel._pool is not None  # the threads did run
    monkeypatch.setattr(parallel, "WORKERS", 1)
    serial = REGISTRY[op](_ctx(op), **arrays)
    assert threaded.dtype == serial.dtype and threaded.shape == serial.shape
    assert np.array_equal(threaded, serial)


def test_reshape_zero_follows_opset() -> None:
    """A 0 in the target shape copies an input dim: right-aligned from iOS17, same index before."""
    x = np.zeros((2, 3, 4), np.float32)
    same_rank = np.array([0, 3, 0], np.int32)
    assert REGISTRY["reshape"](_ctx("reshape", IOS17), x=x, shape=same_rank).shape == (2, 3, 4)
    assert REGISTRY["reshape"](_ctx("reshape", IOS16), x=x, shape=same_rank).shape == (2, 3, 4)
    assert REGISTRY["reshape"](_ctx("reshape", IOS17), x=x, shape=np.array([6, 0], np.int32)).shape == (6, 4)
    with pytest.raises(ValueError):  # iOS15/16: the ranks must agree
        REGISTRY["reshape"](_ctx("reshape", IOS16), x=x, shape=np.array([6, 0], np.int32))


def test_gather_bounds() -> None:
    table, neg = _f32(5, 2), np.array([-1, 2], np.int32)
    np.testing.assert_array_equal(
        REGISTRY["gather"](_ctx("gather", IOS16), x=table, indices=neg), table[[-1, 2]]
    )
    with pytest.raises(IndexError):  # from iOS17 negative indices are out of bounds
        REGISTRY["gather"](_ctx("gather", IOS17), x=table, indices=neg)
    with pytest.raises(IndexError):
        REGISTRY["gather"](_ctx("gather", IOS18), x=table, indices=np.array([5], np.int32))


# =============================================================================================
# Small saved packages


@pytest.fixture(scope="module")
def op_zoo(tmp_path_factory) -> Path:
    """One iOS17 package exercising the ops of the real programs, with their attributes."""

    ids_in = mb.TensorSpec((2, 5), dtype=types.int32)

    @mb.program(input_specs=[mb.TensorSpec((2, 5, 8)), ids_in], opset_version=ct.target.iOS17)
    def prog(x, ids):
        w, b = _ZOO["w"], _ZOO["b"]
        h = mb.linear(x=x, weight=w, bias=b)
        g_exact = mb.gelu(x=h, mode="EXACT", name="g_exact")
        g_tanh = mb.gelu(x=h, mode="TANH_APPROXIMATION", name="g_tanh")
        g_sig = mb.gelu(x=h, mode="SIGMOID_APPROXIMATION", name="g_sig")
        ln = mb.layer_norm(
            x=g_exact, axes=[-1], gamma=_ZOO["gamma"], beta=_ZOO["beta"], epsilon=np.float32(1e-5), name="ln"
        )
        q = mb.reshape(x=ln, shape=[2, 5, 2, 3])
        q = mb.transpose(x=q, perm=[0, 2, 1, 3])  # (2, 2, 5, 3)
        s = mb.matmul(x=q, y=q, transpose_y=True)
        s = mb.mul(x=s, y=np.float32(0.5))
        p = mb.softmax(x=s, axis=-1)
        att = mb.matmul(x=p, y=q, name="att")
        shp = mb.shape(x=ids)
        seq = mb.gather(x=shp, indices=np.int32(1), axis=0)
        end = mb.concat(values=[np.int32(1), seq], axis=0)
        pos = mb.slice_by_index(x=_ZOO["pos"], begin=[0, 0], end=end, end_mask=[True, False])
        ok = mb.greater_equal(x=ids, y=np.int32(0))
        ids2 = mb.select(cond=ok, a=ids, b=mb.add(x=ids, y=np.int32(7)))
        emb = mb.add(
            x=mb.gather(x=_ZOO["table"], indices=ids2, axis=0), y=mb.gather(x=_ZOO["table"], indices=pos)
        )
        msk = mb.cast(x=ok, dtype="fp32")
        pooled = mb.reduce_sum(x=mb.mul(x=emb, y=mb.expand_dims(x=msk, axes=[-1])), axes=[1], keep_dims=False)
        cnt = mb.clip(
            x=mb.reduce_sum(x=msk, axes=[1], keep_dims=True), alpha=np.float32(1e-9), beta=np.float32(1e9)
        )
        mean = mb.real_div(x=pooled, y=cnt)
        nrm = mb.maximum(x=mb.reduce_l2_norm(x=mean, axes=[1], keep_dims=True), y=np.float32(1e-12))
        reps = mb.real_div(x=mb.shape(x=mean), y=mb.shape(x=nrm))
        unit = mb.real_div(x=mean, y=mb.tile(x=nrm, reps=reps), name="unit")
        sq = mb.squeeze(x=mb.slice_by_index(x=att, begin=[0, 0, 0, 0], end=[2, 1, 5, 3]), axes=[1], name="sq")
        return g_tanh, g_sig, ln, att, unit, sq

    return _convert_mil(prog, tmp_path_factory.mktemp("zoo") / "zoo.mlpackage")


_ZOO = {
    "w": _f32(6, 8, scale=0.5),
    "b": _f32(6),
    "gamma": _f32(6),
    "beta": _f32(6),
    "pos": np.arange(16, dtype=np.int32).reshape(1, 16) % 7,
    "table": _f32(7, 3),
}


def _zoo_reference(x: np.ndarray, ids: np.ndarray) -> dict[str, np.ndarray]:
    """float64 torch: a 6-wide layer_norm amplifies float32 rounding past 1e-5 (torch fp32 included)."""

    def d(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).double()

    h = F.linear(d(x), d(_ZOO["w"]), d(_ZOO["b"]))
    ln = F.layer_norm(F.gelu(h), (6,), d(_ZOO["gamma"]), d(_ZOO["beta"]), 1e-5)
    q = ln.reshape(2, 5, 2, 3).transpose(1, 2)
    att = torch.softmax(q @ q.transpose(-1, -2) * 0.5, -1) @ q
    table = d(_ZOO["table"])
    tid = torch.from_numpy(ids).long()
    ok = tid >= 0
    emb = (
        table[torch.where(ok, tid, tid + 7)] + table[torch.from_numpy(_ZOO["pos"][:, : ids.shape[1]]).long()]
    )
    msk = ok.double()
    mean = (emb * msk[..., None]).sum(1) / msk.sum(1, keepdim=True).clamp(1e-9, 1e9)
    return {
        "g_tanh": F.gelu(h, approximate="tanh").numpy(),
        "g_sig": (h * torch.sigmoid(1.702 * h)).numpy(),
        "ln": ln.numpy(),
        "att": att.numpy(),
        "unit": F.normalize(mean, dim=1, eps=1e-12).numpy(),
        "sq": att[:, 0].numpy(),
    }


def test_op_zoo_package_matches_torch(op_zoo: Path) -> None:
    executor = MILProgramExecutor(op_zoo)
    x = _f32(2, 5, 8)
    ids = np.array([[0, 3, 6, -1, -7], [1, 2, 3, 4, 5]], np.int32)
    out = executor.run({"x": x, "ids": ids})
    ref = _zoo_reference(x, ids)
    assert set(out) == set(ref)
    for name, expected in ref.items():
        np.testing.assert_allclose(out[name], expected, rtol=0, atol=ATOL, err_msg=name)
    zoo_ops = ("gelu", "layer_norm", "matmul", "softmax", "gather", "slice_by_index", "tile", "real_div")
    assert set(zoo_ops) <= executor.ops_used


def test_execution_error_names_the_op(op_zoo: Path) -> None:
    executor = MILProgramExecutor(op_zoo)
    ids = np.array([[0, 3, 6, 99, 1], [1, 2, 3, 4, 5]], np.int32)  # 99 is outside the 7-row table
    with pytest.raises(MILExecutionError, match=r"MIL op 'gather' \(name '.+'\) failed in .*zoo\.mlpackage"):
        executor.run({"x": _f32(2, 5, 8), "ids": ids})
    with pytest.raises(ValueError, match="missing input 'ids'"):
        executor.run({"x": _f32(2, 5, 8)})
    with pytest.raises(ValueError, match="input 'ids' is float32"):
        executor.run({"x": _f32(2, 5, 8), "ids": ids.astype(np.float32)})
    out = executor.run({"x": _f32(2, 5, 8).astype(np.float64), "ids": (ids % 7).astype(np.int64)})
    assert out["unit"].dtype == np.float32


def test_unsupported_op_is_refused_at_load(tmp_path: Path) -> None:
    @mb.program(input_specs=[mb.TensorSpec((2, 3))], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.cumsum(x=mb.relu(x=x), axis=1)

    path = _convert_mil(prog, tmp_path / "cumsum.mlpackage")
    with pytest.raises(UnsupportedOpError) as info:
        MILProgramExecutor(path)
    assert str(info.value) == f"unsupported MIL op 'cumsum' in {path}"


def test_registry_without_an_op_is_refused(personality_pkg: Path) -> None:
    registry = {k: v for k, v in REGISTRY.items() if k != "gelu"}
    with pytest.raises(UnsupportedOpError, match=r"^unsupported MIL op 'gelu' in .*personality\.mlpackage$"):
        MILProgramExecutor(personality_pkg, registry=registry)


def test_compressed_weights_packages(tmp_path: Path) -> None:
    """constexpr ops as the milproto loader hands them over (sub-byte data already unpacked)."""
    data4 = np.array([[-8, 7, 3, -1], [0, 1, -2, 5]], np.int8).astype(types.np_int4_dtype)
    scale = np.array([[0.5, 2.0], [1.0, 0.25]], np.float32)
    offset = np.array([[1, -1], [0, 2]], np.int8).astype(types.np_int4_dtype)
    idx = np.array([[3, 0, 1, 2], [2, 2, 0, 1]], np.uint8).astype(types.np_uint2_dtype)
    lut = np.array([-1.0, 0.5, 2.0, 4.0], np.float32).reshape(1, 1, 4, 1)
    qdata = np.array([[-100, 50, 0, 127], [1, 2, 3, 4]], np.int8)

    @mb.program(input_specs=[mb.TensorSpec((2, 4))], opset_version=ct.target.iOS18)
    def prog18(x):
        a = mb.add(
            x=x, y=mb.constexpr_blockwise_shift_scale(data=data4, scale=scale, offset=offset), name="shift"
        )
        b = mb.add(x=x, y=mb.constexpr_lut_to_dense(indices=idx, lut=lut), name="lut")
        return a, b

    @mb.program(input_specs=[mb.TensorSpec((2, 4))], opset_version=ct.target.iOS17)
    def prog17(x):
        w = mb.constexpr_affine_dequantize(
            quantized_data=qdata,
            zero_point=np.array([0, 2], np.int8),
            scale=np.array([0.1, 2.0], np.float32),
            axis=0,
        )
        return mb.add(x=x, y=w, name="affine")

    zeros = {"x": np.zeros((2, 4), np.float32)}
    ex18 = MILProgramExecutor(_convert_mil(prog18, tmp_path / "c18.mlpackage", ct.target.iOS18))
    ex17 = MILProgramExecutor(_convert_mil(prog17, tmp_path / "c17.mlpackage"))
    assert {"constexpr_blockwise_shift_scale", "constexpr_lut_to_dense"} <= ex18.ops_used
    assert "constexpr_affine_dequantize" in ex17.ops_used
    out18, out17 = ex18.run(zeros), ex17.run(zeros)
    # by hand: scale[block] * (data - offset[block]), blocks of 2 columns
    np.testing.assert_allclose(out18["shift"], [[-4.5, 3.0, 8.0, 0.0], [0.0, 1.0, -1.0, 0.75]], atol=0)
    np.testing.assert_allclose(out18["lut"], [[4.0, -1.0, 0.5, 2.0], [2.0, 2.0, -1.0, 0.5]], atol=0)
    np.testing.assert_allclose(out17["affine"], [[-10.0, 5.0, 0.0, 12.7], [-2.0, 0.0, 2.0, 4.0]], atol=1e-6)


def test_fp16_storage_is_emulated(tmp_path: Path) -> None:
    """Each fp16 op output is rounded to float16 before the next op reads it."""
    c = np.float32(1.0 / 3.0)

    @mb.program(input_specs=[mb.TensorSpec((64,))], opset_version=ct.target.iOS17)
    def prog(x):
        y = mb.mul(x=mb.add(x=x, y=c), y=np.float32(3.0))
        return mb.sub(x=y, y=x, name="out")

    path = _convert_mil(prog, tmp_path / "fp16.mlpackage", precision=ct.precision.FLOAT16)
    x = np.linspace(-2, 2, 64, dtype=np.float32)
    executor = MILProgramExecutor(path)
    assert executor.ops_used == {"cast", "add", "mul", "sub"}
    out = executor.run({"x": x})["out"]
    h = np.float16
    x16, c16 = x.astype(h), h(c)
    a = (x16.astype(np.float32) + np.float32(c16)).astype(h)
    m = (a.astype(np.float32) * np.float32(3.0)).astype(h)
    emulated = (m.astype(np.float32) - x16.astype(np.float32)).astype(h)
    np.testing.assert_array_equal(out.astype(np.float32), emulated.astype(np.float32))
    assert np.abs(out.astype(np.float32) - 1.0).max() > 1e-4  # fp32 arithmetic would give ~1.0 everywhere


# =============================================================================================
# The real programs: encoder_v1 (fp32, fp16, int8) and PersonalityModel


@pytest.fixture(scope="module")
def encoder_traced(encoder):
    ex = encoder.tokenize(["hello world", "a longer sentence"])
    return torch.jit.trace(encoder.model, (ex["input_ids"], ex["attention_mask"]))


def _convert_encoder(traced, path: Path, precision) -> Path:
    shape = (ct.RangeDim(1, 64, default=1), ct.RangeDim(1, 256, default=16))
    model = ct.convert(
        traced,
        inputs=[
            ct.TensorType(name="input_ids", shape=shape, dtype=np.int32),
            ct.TensorType(name="attention_mask", shape=shape, dtype=np.int32),
        ],
        outputs=[ct.TensorType(name="sentence_embedding"), ct.TensorType(name="embedding")],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
        compute_precision=precision,
    )
    model.save(str(path))
    return path


@pytest.fixture(scope="module")
def encoder_fp32_pkg(encoder_traced, tmp_path_factory) -> Path:
    return _convert_encoder(
        encoder_traced, tmp_path_factory.mktemp("enc32") / "encoder.mlpackage", ct.precision.FLOAT32
    )


@pytest.fixture(scope="module")
def encoder_fp32(encoder_fp32_pkg) -> MILProgramExecutor:
    return MILProgramExecutor(encoder_fp32_pkg)


@pytest.fixture(scope="module")
def personality(tmp_path_factory):
    from reference import load_personality

    return load_personality().model


@pytest.fixture(scope="module")
def personality_pkg(personality, tmp_path_factory) -> Path:
    traced = torch.jit.trace(personality, torch.randn(2, 1536))
    model = ct.convert(
        traced,
        inputs=[
            ct.TensorType(name="embedding", shape=(ct.RangeDim(1, 64, default=1), 1536), dtype=np.float32)
        ],
        outputs=[ct.TensorType(name="logits")],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
        compute_precision=ct.precision.FLOAT32,
    )
    path = tmp_path_factory.mktemp("pers") / "personality.mlpackage"
    model.save(str(path))
    return path


def _encoder_inputs(batch: int, seq: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random token ids in [1000, 30000), [CLS] first, [SEP] last, padded rows of random length."""
    rng = np.random.default_rng(seed + 1000 * batch + seq)
    ids = np.zeros((batch, seq), np.int32)
    mask = np.zeros((batch, seq), np.int32)
    lengths = rng.integers(1, seq + 1, batch)
    lengths[0] = seq
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(1000, 30000, n)
        ids[row, 0] = 101
        if n > 1:
            ids[row, n - 1] = 102
        mask[row, :n] = 1
    return ids, mask


def _torch_encoder(encoder, ids: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    with torch.no_grad():
        return [t.numpy() for t in encoder.model(torch.from_numpy(ids), torch.from_numpy(mask))]


def _cos_min(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


@pytest.mark.slow
@pytest.mark.parametrize("seq", [1, 37, 256])
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_encoder_fp32_matches_torch(encoder, encoder_fp32, batch: int, seq: int, record_property) -> None:
    ids, mask = _encoder_inputs(batch, seq)
    out = encoder_fp32.run({"input_ids": ids, "attention_mask": mask})
    ref = _torch_encoder(encoder, ids, mask)
    for name, expected in zip(("sentence_embedding", "embedding"), ref, strict=True):
        err = float(np.abs(out[name] - expected).max())
        record_property(f"{name}_max_abs", err)
        assert out[name].dtype == np.float32 and out[name].shape == expected.shape
        assert err <= ATOL, f"{name} batch={batch} seq={seq}: max abs {err:.3g}"


def test_encoder_ops_inventory(encoder_fp32) -> None:
    assert encoder_fp32.ops_used == ENCODER_OPS
    assert encoder_fp32.output_names == ["sentence_embedding", "embedding"]
    assert encoder_fp32.input_names == ["input_ids", "attention_mask"]
    too_long = np.ones((1, 257), np.int32)  # the sequence RangeDim is 1..256
    with pytest.raises(ValueError, match="outside the allowed range"):
        encoder_fp32.run({"input_ids": too_long, "attention_mask": too_long})


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_encoder_compressed_close_to_torch(
    encoder, encoder_traced, encoder_fp32_pkg, tmp_path, precision, record_property
):
    path = tmp_path / f"encoder_{precision}.mlpackage"
    if precision == "fp16":
        _convert_encoder(encoder_traced, path, ct.precision.FLOAT16)
    else:
        from coremltools.optimize.coreml import (
            OpLinearQuantizerConfig,
            OptimizationConfig,
            linear_quantize_weights,
        )

        config = OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
        model = ct.models.MLModel(str(encoder_fp32_pkg), skip_model_load=True)
        linear_quantize_weights(model, OptimizationConfig(global_config=config)).save(str(path))
    executor = MILProgramExecutor(path)
    ids, mask = _encoder_inputs(7, 37)
    out = executor.run({"input_ids": ids, "attention_mask": mask})
    ref = _torch_encoder(encoder, ids, mask)
    emb = out["embedding"].astype(np.float32)
    cos_min, max_abs = _cos_min(emb, ref[1]), float(np.abs(emb - ref[1]).max())
    record_property("cos_min", cos_min)
    record_property("max_abs", max_abs)
    print(f"{precision}: embedding cos_min {cos_min:.6f} max_abs {max_abs:.3g}")
    if precision == "fp16":
        assert "cast" in executor.ops_used and out["embedding"].dtype == np.float16
        assert cos_min > 0.99999 and max_abs < 1e-3
    else:
        assert "constexpr_affine_dequantize" in executor.ops_used
        assert cos_min > 0.998 and max_abs < 2e-2
        assert max_abs > 1e-4  # int8 weights are really used, not a fallback to fp32


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 7, 64])
def test_personality_fp32_matches_torch(personality, personality_pkg, batch: int) -> None:
    executor = MILProgramExecutor(personality_pkg)
    x = np.random.default_rng(batch).standard_normal((batch, 1536)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    out = executor.run({"embedding": x})["logits"]
    with torch.no_grad():
        expected = personality(torch.from_numpy(x)).numpy()
    assert out.shape == (batch, 325)
    assert np.abs(out - expected).max() <= ATOL
    assert executor.ops_used == PERSONALITY_OPS


# =============================================================================================
# Tampering with the saved program must show up in the output


def _main_block(spec):
    function = spec.mlProgram.functions["main"]
    return function.block_specializations[function.opset]


def _const_ops(block) -> dict:
    return {op.outputs[0].name: op for op in block.operations if op.type == "const"}


def _resave(source: Path, spec, target: Path) -> Path:
    source_model = ct.models.MLModel(str(source), skip_model_load=True)
    ct.models.MLModel(spec, weights_dir=source_model.weights_dir, skip_model_load=True).save(str(target))
    return target


@pytest.mark.parametrize("edit", ["gelu_mode", "layer_norm_epsilon"])
def test_altered_graph_changes_output(personality_pkg: Path, tmp_path: Path, edit: str) -> None:
    spec = ct.models.MLModel(str(personality_pkg), skip_model_load=True).get_spec()
    block = _main_block(spec)
    consts = _const_ops(block)
    if edit == "gelu_mode":
        op = next(op for op in block.operations if op.type == "gelu")
        value = consts[op.inputs["mode"].arguments[0].name].attributes["val"].immediateValue.tensor.strings
        assert value.values[0] == "EXACT"
        value.values[0] = "TANH_APPROXIMATION"
    else:
        op = next(op for op in block.operations if op.type == "layer_norm")
        value = consts[op.inputs["epsilon"].arguments[0].name].attributes["val"].immediateValue.tensor.floats
        assert value.values[0] == pytest.approx(1e-5)
        value.values[0] = 1e-2
    altered = _resave(personality_pkg, spec, tmp_path / "altered.mlpackage")

    x = np.random.default_rng(7).standard_normal((7, 1536)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    before = MILProgramExecutor(personality_pkg).run({"embedding": x})["logits"]
    after = MILProgramExecutor(altered).run({"embedding": x})["logits"]
    moved = float(np.abs(after - before).max())
    print(f"{edit}: output moved by {moved:.3g}")
    assert moved > ATOL


def _blob_data_offset(weights_file: Path, metadata_offset: int) -> tuple[int, int]:
    """(data offset, size in bytes) from a weight.bin blob header (sentinel 0xDEADBEEF)."""
    with open(weights_file, "rb") as f:
        f.seek(metadata_offset)
        sentinel, _dtype, size, offset = struct.unpack("<IIQQ", f.read(24))
    assert sentinel == 0xDEADBEEF
    return offset, size


def test_weight_bytes_change_output(personality, personality_pkg: Path, tmp_path: Path) -> None:
    """Scale one float32 of the output projection in weights/weight.bin by (1 + 1e-3)."""
    copy = tmp_path / "perturbed.mlpackage"
    shutil.copytree(personality_pkg, copy)
    spec = ct.models.MLModel(str(copy), skip_model_load=True).get_spec()
    block = _main_block(spec)
    head = next(op for op in block.operations if op.type == "linear" and op.outputs[0].name == "logits")
    blob = _const_ops(block)[head.inputs["weight"].arguments[0].name].attributes["val"].blobFileValue
    weights_file = next(copy.rglob("weight.bin"))
    offset, size = _blob_data_offset(weights_file, blob.offset)
    assert size == 325 * 512 * 4

    x = np.random.default_rng(3).standard_normal((3, 1536)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with torch.no_grad():
        features = personality.features(torch.from_numpy(x)).numpy()
    weight = personality.projection.weight.detach().numpy()
    # the most sensitive single weight for this input: largest |feature_k * W[j, k]|
    j, k = np.unravel_index(np.argmax(np.abs(weight) * np.abs(features).max(0)), weight.shape)
    with open(weights_file, "r+b") as f:
        f.seek(offset + 4 * (j * 512 + k))
        (w,) = struct.unpack("<f", f.read(4))
        assert w == weight[j, k]
        f.seek(offset + 4 * (j * 512 + k))
        f.write(struct.pack("<f", w * (1 + 1e-3)))

    before = MILProgramExecutor(personality_pkg).run({"embedding": x})["logits"]
    after = MILProgramExecutor(copy).run({"embedding": x})["logits"]
    delta = after - before
    moved = float(np.abs(delta).max())
    print(f"weight W[{j},{k}] *= 1.001: output moved by {moved:.3g}")
    assert moved > ATOL
    # only logit j moves, by feature_k * dW
    np.testing.assert_allclose(
        delta[:, j], features[:, k] * (np.float32(w * (1 + 1e-3)) - w), rtol=1e-2, atol=1e-6
    )
    assert np.abs(np.delete(delta, j, axis=1)).max() < 1e-6
