"""numpy implementations of MIL ops, one function per op type, in the style of ``onnx.reference``.

Every op function is called as ``fn(ctx, **inputs)``: ``ctx`` is an :class:`OpContext` and
``inputs`` are the op's MIL inputs by name (numpy arrays, 0-d for scalars; strings stay strings;
tuple inputs such as ``concat.values`` are tuples). Optional inputs the program omits take the
MIL default from the function signature. A function returns one array, or a tuple for multi-output
ops; the executor then casts each result to the output's declared MIL dtype (this is where fp16
storage is emulated) and checks its shape.

Semantics follow the op definitions in ``coremltools/converters/mil/mil/ops/defs`` (their
``value_inference`` / ``decompress`` code), reused directly where that code is vectorised, and
rewritten in float32 numpy where it is not (``gelu`` EXACT uses ``np.vectorize(math.erf)`` there).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from coremltools.converters.mil.mil.ops.defs._utils import (
    get_squeeze_axes,
    solve_slice_by_index_slice,
)
from coremltools.converters.mil.mil.ops.defs.iOS15.tensor_transformation import (
    reshape as _reshape_iOS15,
)
from coremltools.converters.mil.mil.ops.defs.iOS16.constexpr_ops import (
    constexpr_affine_dequantize as _affine_iOS16,
)
from coremltools.converters.mil.mil.ops.defs.iOS16.constexpr_ops import (
    constexpr_lut_to_dense as _lut_iOS16,
)
from coremltools.converters.mil.mil.ops.defs.iOS17.tensor_transformation import (
    reshape as _reshape_iOS17,
)
from coremltools.converters.mil.mil.ops.defs.iOS18.compression import (
    constexpr_blockwise_shift_scale as _shift_scale_iOS18,
)
from coremltools.converters.mil.mil.ops.defs.iOS18.compression import (
    constexpr_lut_to_dense as _lut_iOS18,
)
from coremltools.converters.mil.mil.types.type_mapping import string_to_nptype

from verify.backends.mil import parallel

#: ``opset`` values in :class:`OpContext` (Core ML specification versions, as ``ct.target``).
IOS15, IOS16, IOS17, IOS18 = 6, 7, 8, 9


@dataclass(frozen=True)
class OpContext:
    """What an op function may need besides its inputs."""

    op_type: str
    name: str
    opset: int  # the function's opset as a specification version (IOS17 == 8)
    out_dtypes: tuple[np.dtype, ...] = ()


OpFn = Callable[..., Any]

#: op type -> implementation.
REGISTRY: dict[str, OpFn] = {}
#: Ops that only move or select data: fp16 inputs are passed as fp16 (no float32 upcast).
NO_UPCAST: set[str] = set()


def register(op_type: str, *, upcast: bool = True) -> Callable[[OpFn], OpFn]:
    def wrap(fn: OpFn) -> OpFn:
        REGISTRY[op_type] = fn
        if not upcast:
            NO_UPCAST.add(op_type)
        return fn

    return wrap


def _axis(axis: Any, rank: int) -> int:
    a = int(axis)
    if not -rank <= a < max(rank, 1):
        raise ValueError(f"axis {a} out of range for rank {rank}")
    return a + rank if a < 0 else a


def _axes(axes: Any, rank: int) -> tuple[int, ...] | None:
    if axes is None:
        return None
    return tuple(_axis(a, rank) for a in np.atleast_1d(axes))


def _f32(c: float) -> np.float32:
    return np.float32(c)


# ---------------------------------------------------------------------------------------------
# Elementwise binary (numpy broadcasting == MIL broadcasting)


def _binary(fn: Callable[[Any, Any], Any]) -> OpFn:
    def op(ctx: OpContext, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return fn(x, y)

    return op


for _name, _fn in {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "pow": np.power,
    "equal": np.equal,
    "not_equal": np.not_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
    "less": np.less,
    "less_equal": np.less_equal,
    "logical_and": np.logical_and,
    "logical_or": np.logical_or,
}.items():
    register(_name)(_binary(_fn))


def _is_int(a: np.ndarray) -> bool:
    return np.issubdtype(a.dtype, np.integer)


@register("real_div")
def real_div(ctx: OpContext, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Float: IEEE division. Integer (ML Program): true division truncated toward zero, int output."""
    if _is_int(x) and _is_int(y):
        if np.any(y == 0):
            raise ZeroDivisionError("integer real_div by zero")
        return np.trunc(np.true_divide(x, y)).astype(np.result_type(x, y))
    return np.true_divide(x, y)


@register("floor_div")
def floor_div(ctx: OpContext, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if _is_int(x) and _is_int(y):
        if np.any(y == 0):
            raise ZeroDivisionError("integer floor_div by zero")
        return np.floor_divide(x, y)
    return np.floor(np.true_divide(x, y))


# ---------------------------------------------------------------------------------------------
# Elementwise unary

_CHUNK = 1 << 15  # elements per block for long elementwise chains: keeps temporaries in cache


def _blockwise(fn: Callable[[np.ndarray, np.ndarray], None], x: np.ndarray) -> np.ndarray:
    """Apply ``fn(x_block, out_block)`` over flat blocks of ``x``; returns a new array. One thread:
    a chain of ~25 short ufunc calls per block hands the GIL over too often to gain from two
    (gelu on 16×256×1536: 50 ms on one thread, 57-71 ms on two)."""
    x = np.ascontiguousarray(x)
    out = np.empty_like(x)
    xf, of = x.reshape(-1), out.reshape(-1)
    for i in range(0, xf.size, _CHUNK):
        fn(xf[i : i + _CHUNK], of[i : i + _CHUNK])
    return out


# erf(x) = x P(x^2) / Q(x^2) on [-4, 4] (the float32 rational approximation used by Eigen/XLA);
# |error| < 4e-7 against the float64 erf. Outside [-4, 4], erf is +-1 in float32.
_ERF_P = tuple(
    _f32(c)
    for c in (
        -2.72614225801306e-10,
        2.77068142495902e-08,
        -2.10102402082508e-06,
        -5.69250639462346e-05,
        -7.34990630326855e-04,
        -2.95459980854025e-03,
        -1.60960333262415e-02,
    )
)
_ERF_Q = tuple(
    _f32(c)
    for c in (
        -1.45660718464996e-05,
        -2.13374055278905e-04,
        -1.68282697438203e-03,
        -7.37332916720468e-03,
        -1.42647390514189e-02,
    )
)


def _erf_into(x: np.ndarray, out: np.ndarray) -> None:
    """out = erf(x) for float32 ``x``; ``out`` may alias ``x``."""
    xc = np.clip(x, _f32(-4.0), _f32(4.0))
    x2 = xc * xc
    p = x2 * _ERF_P[0]
    p += _ERF_P[1]
    for c in _ERF_P[2:]:
        p *= x2
        p += c
    p *= xc
    q = x2 * _ERF_Q[0]
    q += _ERF_Q[1]
    for c in _ERF_Q[2:]:
        q *= x2
        q += c
    np.divide(p, q, out=out)


def _float(x: np.ndarray) -> np.ndarray:
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)


@register("erf")
def erf(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return _blockwise(_erf_into, _float(x))


_INV_SQRT2 = _f32(1.0 / math.sqrt(2.0))
_SQRT_2_OVER_PI = _f32(math.sqrt(2.0 / math.pi))


def _gelu_exact(x: np.ndarray, out: np.ndarray) -> None:
    np.multiply(x, _INV_SQRT2, out=out)
    _erf_into(out, out)
    out += _f32(1.0)
    out *= x
    out *= _f32(0.5)


def _gelu_tanh(x: np.ndarray, out: np.ndarray) -> None:
    np.multiply(x, x, out=out)
    out *= _f32(0.044715)
    out += _f32(1.0)
    out *= x
    out *= _SQRT_2_OVER_PI
    np.tanh(out, out=out)
    out += _f32(1.0)
    out *= x
    out *= _f32(0.5)


def _gelu_sigmoid(x: np.ndarray, out: np.ndarray) -> None:
    np.multiply(x, _f32(-1.702), out=out)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += _f32(1.0)
    np.divide(x, out, out=out)


_GELU = {"EXACT": _gelu_exact, "TANH_APPROXIMATION": _gelu_tanh, "SIGMOID_APPROXIMATION": _gelu_sigmoid}


@register("gelu")
def gelu(ctx: OpContext, x: np.ndarray, mode: str = "EXACT") -> np.ndarray:
    """EXACT: 0.5 x (1 + erf(x / sqrt 2)); TANH_APPROXIMATION; SIGMOID_APPROXIMATION: x sigmoid(1.702 x)."""
    if mode not in _GELU:
        raise ValueError(f"unknown gelu mode {mode!r}")
    return _blockwise(_GELU[mode], x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        e = np.exp(-x)
    e += 1
    return np.reciprocal(e, out=e)


@register("sigmoid")
def sigmoid(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return _sigmoid(x)


@register("silu")
def silu(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return x * _sigmoid(x)


@register("relu")
def relu(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return np.maximum(x, np.zeros((), x.dtype))


@register("tanh")
def tanh(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return np.tanh(x)


@register("exp")
def exp(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return np.exp(x)


@register("sqrt")
def sqrt(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return np.sqrt(x)


@register("rsqrt")
def rsqrt(ctx: OpContext, x: np.ndarray, epsilon: Any = 1e-12) -> np.ndarray:
    """1 / sqrt(x + epsilon)."""
    return np.reciprocal(np.sqrt(x + np.asarray(epsilon, x.dtype)))


@register("log")
def log(ctx: OpContext, x: np.ndarray, epsilon: Any = 1e-45) -> np.ndarray:
    """log(x + epsilon)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(x + np.asarray(epsilon, x.dtype))


@register("inverse")
def inverse(ctx: OpContext, x: np.ndarray, epsilon: Any = 1e-4) -> np.ndarray:
    """1 / (x + epsilon)."""
    return np.reciprocal(x + np.asarray(epsilon, x.dtype))


_UNARY: dict[str, Any] = {"abs": np.abs, "square": np.square, "logical_not": np.logical_not}
for _name, _fn in _UNARY.items():
    register(_name)((lambda f: lambda ctx, x: f(x))(_fn))


@register("clip")
def clip(ctx: OpContext, x: np.ndarray, alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(x, alpha), beta)


@register("cast", upcast=False)
def cast(ctx: OpContext, x: np.ndarray, dtype: str) -> np.ndarray:
    """Float -> int truncates toward zero (C conversion), like coremltools' value inference."""
    return x.astype(string_to_nptype(dtype))


# ---------------------------------------------------------------------------------------------
# Reductions


def _reduction(fn: Callable[..., np.ndarray]) -> OpFn:
    def op(ctx: OpContext, x: np.ndarray, axes: Any = None, keep_dims: Any = False) -> np.ndarray:
        return fn(x, axis=_axes(axes, x.ndim), keepdims=bool(keep_dims))

    return op


def _l2(x: np.ndarray, axis: Any, keepdims: bool) -> np.ndarray:
    return np.sqrt(np.sum(np.square(x), axis=axis, keepdims=keepdims))


_REDUCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "reduce_sum": np.sum,
    "reduce_mean": np.mean,
    "reduce_max": np.max,
    "reduce_min": np.min,
    "reduce_l2_norm": _l2,
}
for _name, _reduce in _REDUCTIONS.items():
    register(_name)(_reduction(_reduce))


def _arg_reduction(fn: Callable[..., np.ndarray]) -> OpFn:
    def reduce(
        ctx: OpContext, x: np.ndarray, axis: Any = -1, keep_dims: Any = False, output_dtype: str = "int32"
    ) -> np.ndarray:
        a = _axis(axis, x.ndim)
        res = fn(x, axis=a)
        if keep_dims:
            res = np.expand_dims(res, a)
        return res.astype(string_to_nptype(output_dtype))

    return reduce


register("reduce_argmax")(_arg_reduction(np.argmax))
register("reduce_argmin")(_arg_reduction(np.argmin))


# ---------------------------------------------------------------------------------------------
# Linear algebra, normalisation, softmax


def _blas_ready(a: np.ndarray) -> np.ndarray:
    """C-contiguous operands (2-D may also be Fortran-ordered: BLAS transposes for free).
    numpy's stacked matmul is 2-3x slower on strided or transposed views than copy + GEMM."""
    if a.ndim < 2 or a.flags.c_contiguous or (a.ndim == 2 and a.flags.f_contiguous):
        return a
    return np.ascontiguousarray(a)


@register("linear")
def linear(ctx: OpContext, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x @ weight.T + bias, weight (D_out, D_in). Leading axes are flattened into one GEMM."""
    lead = x.shape[:-1]
    out = _gemm(_blas_ready(x.reshape(-1, x.shape[-1])), weight.T)
    if bias is not None:
        out += bias
    return out.reshape(*lead, weight.shape[0])


def _blas_controller() -> Any:
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: without it stacked matmuls run with the default BLAS threads
        return None
    return ThreadpoolController()


_BLAS_CONTROLLER = _blas_controller()


def one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """BLAS limited to one thread (numpy's GEMMs then run where they are called). A no-op in
    serial mode, whose caller has already limited BLAS for every thread (``limit`` is global)."""
    if _BLAS_CONTROLLER is None or parallel.in_serial():
        return contextlib.nullcontext()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


#: Below this many rows a 2-D GEMM runs on one BLAS thread: thread hand-off costs more than
#: it saves (5x slower at 12 rows on a loaded 2-core machine). At 64 rows (PersonalityModel's
#: batch) two threads win, loaded or not: 446-526 µs against 620-645 for 64×512×512.
_SMALL_GEMM_ROWS = 64


def _gemm(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if x.shape[0] >= _SMALL_GEMM_ROWS:
        return np.matmul(x, y)
    with one_blas_thread():
        return np.matmul(x, y)


def _stacked_matmul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """numpy runs one GEMM per matrix of a stack; a multi-threaded BLAS then synchronises its
    threads for every small GEMM (4-6x slower for attention-sized stacks, worse on a busy CPU),
    so stacks run with one BLAS thread when threadpoolctl is available, the stack's leading axis
    shared out over threads instead."""
    if _BLAS_CONTROLLER is None or max(x.ndim, y.ndim) < 3:
        return np.matmul(x, y)
    with one_blas_thread():
        if x.ndim != y.ndim or x.shape[0] != y.shape[0] or x.dtype != y.dtype:
            return np.matmul(x, y)
        lead = np.broadcast_shapes(x.shape[:-2], y.shape[:-2])
        out = np.empty((*lead, x.shape[-2], y.shape[-1]), dtype=np.result_type(x, y))
        parallel.over_rows(lambda part: np.matmul(x[part], y[part], out=out[part]), x.shape[0], out.size)
        return out


@register("matmul")
def matmul(
    ctx: OpContext, x: np.ndarray, y: np.ndarray, transpose_x: Any = False, transpose_y: Any = False
) -> np.ndarray:
    if transpose_x:
        x = np.swapaxes(x, -1, -2)
    if transpose_y:
        y = np.swapaxes(y, -1, -2)
    if x.ndim > 2 and y.ndim == 2:  # one GEMM over the flattened leading axes
        lead = x.shape[:-1]
        return _gemm(_blas_ready(x.reshape(-1, x.shape[-1])), _blas_ready(y)).reshape(*lead, y.shape[-1])
    return _stacked_matmul(_blas_ready(x), _blas_ready(y))


@register("softmax")
def softmax(ctx: OpContext, x: np.ndarray, axis: Any = -1) -> np.ndarray:
    a = _axis(axis, x.ndim)
    if a == 0 or x.ndim < 2 or not parallel.splits(x.shape[0], x.size):
        return _softmax(x, a)
    out = np.empty(x.shape, dtype=x.dtype)

    def work(part: slice) -> None:
        out[part] = _softmax(x[part], a)

    parallel.over_rows(work, x.shape[0], x.size)
    return out


def _softmax(x: np.ndarray, a: int) -> np.ndarray:
    e = np.subtract(x, np.max(x, axis=a, keepdims=True))
    np.exp(e, out=e)
    e /= np.sum(e, axis=a, keepdims=True)
    return e


@register("layer_norm")
def layer_norm(
    ctx: OpContext,
    x: np.ndarray,
    axes: Any = None,
    gamma: np.ndarray | None = None,
    beta: np.ndarray | None = None,
    epsilon: Any = 1e-5,
) -> np.ndarray:
    """(x - mean) / sqrt(var + epsilon) * gamma + beta over ``axes`` (default: all), biased variance."""
    rank = x.ndim
    red = _axes(axes, rank) or tuple(range(rank))
    if 0 not in red and parallel.splits(x.shape[0], x.size):  # rows normalise alone: share them out
        out = np.empty(x.shape, dtype=np.result_type(x.dtype, np.float32))

        def work(part: slice) -> None:
            out[part] = _layer_norm(x[part], red, gamma, beta, epsilon)

        parallel.over_rows(work, x.shape[0], x.size)
        return out
    return _layer_norm(x, red, gamma, beta, epsilon)


def _layer_norm(
    x: np.ndarray, red: tuple[int, ...], gamma: np.ndarray | None, beta: np.ndarray | None, epsilon: Any
) -> np.ndarray:
    rank = x.ndim
    centered = x - np.mean(x, axis=red, keepdims=True)
    var = np.mean(np.square(centered), axis=red, keepdims=True)
    var += np.asarray(epsilon, var.dtype)
    centered /= np.sqrt(var, out=var)
    norm_shape = [x.shape[i] if i in red else 1 for i in range(rank)]
    if gamma is not None:
        centered *= np.reshape(gamma, norm_shape)
    if beta is not None:
        centered += np.reshape(beta, norm_shape)
    return centered


# ---------------------------------------------------------------------------------------------
# Shapes and data movement (fp16 data stays fp16)


@register("shape", upcast=False)
def shape(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    return np.array(x.shape, dtype=np.int32)


@register("reshape", upcast=False)
def reshape(ctx: OpContext, x: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """0 copies an input dim (right-aligned from iOS17, same index before); -1 is inferred."""
    target = [int(s) for s in np.atleast_1d(shape)]
    if 0 in target:
        impl = _reshape_iOS17 if ctx.opset >= IOS17 else _reshape_iOS15
        target = impl.replace_zeros_in_shape(list(x.shape), target)
    return np.reshape(x, target)


@register("transpose", upcast=False)
def transpose(ctx: OpContext, x: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """A C-ordered copy: numpy's ufuncs and reductions follow their input's memory order, so a
    transposed view would make later ops round by layout (and a slab's joined rows differ)."""
    if not x.ndim:
        return x
    return np.ascontiguousarray(np.transpose(x, [_axis(p, x.ndim) for p in np.atleast_1d(perm)]))


@register("expand_dims", upcast=False)
def expand_dims(ctx: OpContext, x: np.ndarray, axes: np.ndarray) -> np.ndarray:
    axes_list = [int(a) for a in np.atleast_1d(axes)]
    out_rank = x.ndim + len(axes_list)
    shape = list(x.shape)
    for a in sorted(_axis(a, out_rank) for a in axes_list):
        shape.insert(a, 1)
    return np.reshape(x, shape)


@register("squeeze", upcast=False)
def squeeze(ctx: OpContext, x: np.ndarray, axes: np.ndarray | None = None) -> np.ndarray:
    """As MIL's type inference: of the given axes, only those of size 1 are removed."""
    chosen = _axes(axes, x.ndim)
    if chosen is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=tuple(a for a in chosen if x.shape[a] == 1))


@register("identity", upcast=False)
def identity(ctx: OpContext, x: np.ndarray) -> np.ndarray:
    """ct.convert inserts it where an output comes straight from a const or an input."""
    return x


@register("concat", upcast=False)
def concat(ctx: OpContext, values: tuple[np.ndarray, ...], axis: Any, interleave: Any = False) -> np.ndarray:
    vals = [np.atleast_1d(v) for v in values]
    a = _axis(axis, vals[0].ndim)
    if not interleave:
        return np.concatenate(vals, axis=a)
    # interleave: [a0, b0, a1, b1, ...] along axis; all inputs have the same shape.
    stacked = np.stack(vals, axis=a + 1)
    shape = list(vals[0].shape)
    shape[a] *= len(vals)
    return stacked.reshape(shape)


@register("tile", upcast=False)
def tile(ctx: OpContext, x: np.ndarray, reps: np.ndarray) -> np.ndarray:
    counts = [int(r) for r in np.atleast_1d(reps)]
    if len(counts) != x.ndim:
        raise ValueError(f"tile: len(reps)={len(counts)} != rank {x.ndim}")
    return np.tile(x, counts)


@register("select", upcast=False)
def select(ctx: OpContext, cond: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(cond, a, b)


def _opt_list(v: Any) -> list | None:
    return None if v is None else [x.item() if hasattr(x, "item") else x for x in np.atleast_1d(v)]


@register("slice_by_index", upcast=False)
def slice_by_index(
    ctx: OpContext,
    x: np.ndarray,
    begin: np.ndarray,
    end: np.ndarray,
    stride: np.ndarray | None = None,
    begin_mask: np.ndarray | None = None,
    end_mask: np.ndarray | None = None,
    squeeze_mask: np.ndarray | None = None,
) -> np.ndarray:
    """TF strided-slice semantics (coremltools' own slice solver); squeeze_mask takes begin[i] only."""
    squeeze = _opt_list(squeeze_mask)
    slices = solve_slice_by_index_slice(
        x.shape,
        np.atleast_1d(begin),
        np.atleast_1d(end),
        _opt_list(stride),
        _opt_list(begin_mask),
        _opt_list(end_mask),
        squeeze,
    )
    res = x[slices]
    axes = get_squeeze_axes(squeeze, x.ndim)
    return np.squeeze(res, axis=tuple(axes)) if axes else res


@register("gather", upcast=False)
def gather(
    ctx: OpContext,
    x: np.ndarray,
    indices: np.ndarray,
    axis: Any = 0,
    batch_dims: Any = 0,
    validate_indices: Any = False,
) -> np.ndarray:
    """tf.gather with batch_dims. From iOS17 negative indices are out of bounds (the converter
    maps them with select); before, -D <= i < D. Out-of-bounds indices raise either way
    (undefined in Core ML when validate_indices is False)."""
    a = _axis(axis, x.ndim)
    bd = int(batch_dims)
    idx = np.asarray(indices)
    n = x.shape[a]
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        low = 0 if ctx.opset >= IOS17 else -n
        if lo < low or hi >= n:
            raise IndexError(f"gather indices out of bounds [{low}, {n}): min {lo}, max {hi}")
    if bd == 0:
        return np.take(x, idx.astype(np.intp, copy=False), axis=a)
    if bd < 0:
        bd += idx.ndim
    # batched: x[b..., idx[b..., n...]] via advanced indexing over the batch axes.
    xb = np.moveaxis(x, a, bd)
    grids = []
    for i in range(bd):
        g = [1] * idx.ndim
        g[i] = x.shape[i]
        grids.append(np.arange(x.shape[i]).reshape(g))
    res = xb[(*grids, idx.astype(np.intp, copy=False))]  # batch, N[bd:], D[bd:a], D[a+1:]
    n_idx, n_mid = idx.ndim - bd, a - bd
    return np.moveaxis(res, list(range(bd, bd + n_idx)), list(range(bd + n_mid, bd + n_mid + n_idx)))


# ---------------------------------------------------------------------------------------------
# Compressed weights (evaluated once, at load time)


@register("constexpr_affine_dequantize")
def constexpr_affine_dequantize(
    ctx: OpContext, quantized_data: np.ndarray, zero_point: np.ndarray, scale: np.ndarray, axis: Any
) -> np.ndarray:
    """scale * (quantized_data - zero_point), scale/zero_point broadcast along ``axis``."""
    return _affine_iOS16.decompress(quantized_data, zero_point, scale, int(axis))


@register("constexpr_blockwise_shift_scale")
def constexpr_blockwise_shift_scale(
    ctx: OpContext, data: np.ndarray, scale: np.ndarray, offset: np.ndarray | None = None
) -> np.ndarray:
    """scale[block] * (data - offset[block]); block sizes are data.shape / scale.shape."""
    return _shift_scale_iOS18.decompress(data, scale, offset)


@register("constexpr_lut_to_dense")
def constexpr_lut_to_dense(
    ctx: OpContext,
    indices: np.ndarray,
    lut: np.ndarray,
    shape: np.ndarray | None = None,
    vector_axis: Any = None,
) -> np.ndarray:
    """iOS16: packed uint8 ``indices`` + 1-D ``lut`` + ``shape``; iOS18: unpacked indices into
    per-block (and optionally vector) LUTs."""
    if shape is not None:
        return _lut_iOS16.decompress(lut, indices, np.asarray(shape))
    return _lut_iOS18.decompress(indices, lut, None if vector_axis is None else int(vector_axis))


@register("constexpr_cast")
def constexpr_cast(ctx: OpContext, source_val: np.ndarray, output_dtype: str) -> np.ndarray:
    return source_val.astype(string_to_nptype(output_dtype))


# ---------------------------------------------------------------------------------------------
# Row-wise ops, for slab execution (verify.backends.mil.slabs)

#: ``rule(static, in_rank, out_rank)``: does this op compute output row ``i`` (axis 0) from input
#: row ``i`` alone, given its const inputs and the ranks of its first dynamic input and of its
#: output? The executor checks the rest: one output of rank >= 2, dynamic inputs of rank >= 2 (of
#: the output's rank when there are several: no broadcast from a lower rank), and no const with
#: rows of its own (:data:`WEIGHTS` aside).
RowRule = Callable[[dict[str, Any], int, int], bool]


def _any_step(static: dict[str, Any], in_rank: int, out_rank: int) -> bool:
    return True


def _keeps_axis0(key: str, default: Any, on_output: bool = False) -> RowRule:
    """The op reduces, normalises or inserts over ``static[key]`` (axes of its input, or of its
    output with ``on_output``); rows stay apart if axis 0 is not one of them."""

    def rule(static: dict[str, Any], in_rank: int, out_rank: int) -> bool:
        axes = _axes(static.get(key, default), out_rank if on_output else in_rank)
        return axes is not None and 0 not in axes

    return rule


def _stacked_matmul_rule(static: dict[str, Any], in_rank: int, out_rank: int) -> bool:
    # both operands computed (attention); a const weight operand stays op by op, as linear covers it
    return out_rank >= 3 and "x" not in static and "y" not in static


def _transpose_rule(static: dict[str, Any], in_rank: int, out_rank: int) -> bool:
    perm = static.get("perm")
    return perm is not None and _axis(np.atleast_1d(perm)[0], in_rank) == 0


ELEMENTWISE = (
    *("abs", "add", "cast", "clip", "equal", "erf", "exp", "floor_div", "gelu", "greater"),
    *("greater_equal", "identity", "inverse", "less", "less_equal", "log", "logical_and"),
    *("logical_not", "logical_or", "maximum", "minimum", "mul", "not_equal", "pow", "real_div"),
    *("relu", "rsqrt", "select", "sigmoid", "silu", "sqrt", "square", "sub", "tanh"),
)

ROW_WISE: dict[str, RowRule] = {
    **dict.fromkeys(ELEMENTWISE, _any_step),
    "softmax": _keeps_axis0("axis", -1),
    "layer_norm": _keeps_axis0("axes", None),
    "matmul": _stacked_matmul_rule,
    "linear": _any_step,
    "transpose": _transpose_rule,
    "expand_dims": _keeps_axis0("axes", None, on_output=True),
    "squeeze": _keeps_axis0("axes", None),  # axes None squeezes a batch of one row too: not row-wise
    **{f"reduce_{kind}": _keeps_axis0("axes", None) for kind in ("sum", "mean", "max", "min", "l2_norm")},
}

#: Row-wise ops whose output rank may differ from their (one) dynamic input's.
CHANGES_RANK = frozenset({"expand_dims", "squeeze"} | {op for op in ROW_WISE if op.startswith("reduce_")})

#: Const inputs that are an op's parameters, never broadcast against its rows.
WEIGHTS: dict[str, frozenset[str]] = {
    "linear": frozenset({"weight", "bias"}),
    "layer_norm": frozenset({"gamma", "beta"}),
}

#: Ops that may compute with shapes inside a slab: when every dynamic input is a shape (from
#: ``shape`` or from such an op) and the result has rank <= 1. Inside a slab ``shape`` reports the
#: whole batch's rows, so each slice computes the values a whole-batch run computes.
SHAPE_ARITHMETIC = frozenset(
    {"add", "cast", "concat", "equal", "floor_div", "gather", "maximum", "minimum", "mul", "not_equal"}
    | {"real_div", "select", "slice_by_index", "squeeze", "sub", "expand_dims", "identity"}
)


class NotRowWise(Exception):
    """Raised inside a slab by an op that turns out not to be row-wise for these values; the
    slab then runs op by op."""


def _whole_batch_shape(fn: OpFn, rows: int | None, total: int) -> OpFn:
    def call(ctx: OpContext, x: np.ndarray) -> np.ndarray:
        out = np.array(fn(ctx, x))
        out[0] = total
        return out

    return call


def _reshape_of_rows(fn: OpFn, rows: int | None, total: int) -> OpFn:
    """A reshape that keeps axis 0 (the batch's rows) keeps each row's values together."""

    def call(ctx: OpContext, x: np.ndarray, shape: np.ndarray) -> np.ndarray:
        target = np.array(np.atleast_1d(shape))
        first = int(target[0]) if target.ndim == 1 and target.size else None
        if first is not None and 0 in target[1:]:  # a 0 copies an input dim: axis 0, perhaps
            raise NotRowWise(f"reshape to {target.tolist()} copies input dims")
        if first == total:
            target[0] = rows
        elif first != -1:  # -1: inferred, row-wise if each slice keeps its row count
            raise NotRowWise(f"reshape to {target.tolist()} does not keep the batch's {total} rows")
        try:
            out = fn(ctx, x, target)
        except ValueError as exc:
            raise NotRowWise(f"reshape to {target.tolist()} fails on a slice: {exc}") from exc
        if len(out) != rows:
            raise NotRowWise(f"reshape to {target.tolist()} does not keep the slice's {rows} rows")
        return out

    return call


def _tile_of_rows(fn: OpFn, rows: int | None, total: int) -> OpFn:
    def call(ctx: OpContext, x: np.ndarray, reps: np.ndarray) -> np.ndarray:
        if int(np.atleast_1d(reps)[0]) != 1:
            raise NotRowWise("tile repeats the rows")
        return fn(ctx, x, reps)

    return call


#: ``adapter(fn, rows, total)``: the op function to call on a slice of ``rows`` (None when the
#: output is the whole batch's) of a batch of ``total`` rows, for ops whose row-wise-ness depends
#: on values known at run time (``reshape``'s shape, ``tile``'s reps) or that report the batch
#: (``shape``). It raises :class:`NotRowWise` when the values do not keep the rows apart.
SLICED: dict[str, Callable[[OpFn, int | None, int], OpFn]] = {
    "shape": _whole_batch_shape,
    "reshape": _reshape_of_rows,
    "tile": _tile_of_rows,
}
