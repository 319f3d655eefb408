"""Slab execution (``verify.backends.mil.slabs``): runs of row-wise ops evaluated a slice of rows
at a time must give exactly what op-by-op evaluation gives, and fail the same way."""

from __future__ import annotations

import threading
from pathlib import Path

import coremltools as ct
import numpy as np
import pytest
from coremltools.converters.mil import Builder as mb  # noqa: N813 - the name coremltools uses
from coremltools.converters.mil.mil import types

from contracts import ENCODER_V1
from golden.store import read_golden
from verify.backends.mil import parallel, slabs
from verify.backends.mil.errors import MILExecutionError
from verify.backends.mil.executor import MILProgramExecutor
from verify.checks.numerics import length_order

ATTENTION = ("transpose", "transpose", "matmul", "mul", "add", "softmax", "transpose", "matmul")
FEED_FORWARD = ("linear", "add", "layer_norm", "linear", "gelu", "linear", "add", "layer_norm")


@pytest.fixture
def slab_calls(monkeypatch) -> list[bool | None]:
    """What each ``slabs.run`` returned (True: the slab ran sliced; None: it raised), calling
    through to it."""
    calls: list[bool | None] = []
    real = slabs.run

    def run(*args, **kwargs):
        calls.append(None)
        calls[-1] = real(*args, **kwargs)
        return calls[-1]

    monkeypatch.setattr(slabs, "run", run)
    return calls


def _save(prog, path: Path) -> Path:
    model = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
        compute_precision=ct.precision.FLOAT32,
        pass_pipeline=ct.PassPipeline.EMPTY,  # keep the ops exactly as built
    )
    model.save(str(path))
    return path


@pytest.mark.parametrize("artifact", ["coreml-fp32", "coreml-fp16"])
def test_encoder_slabs_give_the_bits_of_op_by_op(bundles: Path, artifact: str, slab_calls) -> None:
    bundle = bundles / "encoder_v1"
    path = bundle / ENCODER_V1.artifact(artifact).filename
    sliced, whole = MILProgramExecutor(path), MILProgramExecutor(path, use_slabs=False)
    assert sliced.slabs.count(ATTENTION) == 6 and sliced.slabs.count(FEED_FORWARD) == 6
    assert whole.slabs == []
    golden = read_golden(bundle / "golden")
    names = [spec.name for spec in ENCODER_V1.inputs]
    order = length_order(golden)
    # long rows, many short ones, and an odd count too small to slice
    for rows, sliced_runs in ((order[-16:], True), (order[:64], True), (order[:7], False)):
        feed = golden.batch(names, rows)
        slab_calls.clear()
        got, expected = sliced.run(feed), whole.run(feed)
        assert any(slab_calls) == sliced_runs, feed["input_ids"].shape
        for name in expected:
            assert got[name].dtype == expected[name].dtype
            assert np.array_equal(got[name], expected[name]), f"{name} at {feed['input_ids'].shape}"


def test_slabs_end_at_ops_that_mix_rows(tmp_path: Path, monkeypatch, slab_calls) -> None:
    specs = [mb.TensorSpec((4, 6, 8)), mb.TensorSpec((4, 1, 8))]

    @mb.program(input_specs=specs, opset_version=ct.target.iOS17)
    def prog(x, m):
        a = mb.mul(x=x, y=np.float32(2.0))
        b = mb.add(x=a, y=m)
        s = mb.softmax(x=b, axis=-1)
        t = mb.softmax(x=s, axis=0)  # across rows
        u = mb.transpose(x=t, perm=[1, 0, 2])  # rows become columns
        w = mb.exp(x=mb.relu(x=u), name="w")
        r = mb.reduce_sum(x=w, axes=[0], keep_dims=True, name="r")  # across rows
        return w, r

    executor = MILProgramExecutor(_save(prog, tmp_path / "rows.mlpackage"))
    assert executor.slabs == [("mul", "add", "softmax"), ("relu", "exp")]
    monkeypatch.setattr(slabs, "SLICE_ELEMENTS", 1)  # one row a slice
    rng = np.random.default_rng(0)
    x, m = rng.standard_normal((4, 6, 8), dtype=np.float32), rng.standard_normal((4, 1, 8), dtype=np.float32)
    got = executor.run({"x": x, "m": m})
    assert slab_calls == [True, True]

    def softmax(v: np.ndarray, axis: int) -> np.ndarray:
        e = np.exp(v - v.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    w = np.exp(np.maximum(softmax(softmax(2 * x + m, -1), 0).transpose(1, 0, 2), 0))
    np.testing.assert_allclose(got["w"], w, rtol=1e-6)
    np.testing.assert_allclose(got["r"], w.sum(0, keepdims=True), rtol=1e-6)
    whole = MILProgramExecutor(executor.path, use_slabs=False).run({"x": x, "m": m})
    assert all(np.array_equal(got[k], whole[k]) for k in whole)


def test_a_broadcast_input_runs_op_by_op(tmp_path: Path, monkeypatch, slab_calls) -> None:
    """An input of one row broadcast over the others: its row is not a slice's row."""

    @mb.program(input_specs=[mb.TensorSpec((4, 8)), mb.TensorSpec((1, 8))], opset_version=ct.target.iOS17)
    def prog(x, m):
        return mb.exp(x=mb.add(x=x, y=m))

    executor = MILProgramExecutor(_save(prog, tmp_path / "broadcast.mlpackage"))
    assert executor.slabs == [("add", "exp")]
    monkeypatch.setattr(slabs, "SLICE_ELEMENTS", 1)
    x, m = np.arange(32, dtype=np.float32).reshape(4, 8) / 10, np.linspace(-1, 1, 8, dtype=np.float32)[None]
    (out,) = executor.run({"x": x, "m": m}).values()
    assert slab_calls == [False]
    np.testing.assert_allclose(out, np.exp(x + m), rtol=1e-6)


def test_a_failure_inside_a_slab_names_its_op(tmp_path: Path, monkeypatch, slab_calls) -> None:
    @mb.program(input_specs=[mb.TensorSpec((4, 3), dtype=types.int32)], opset_version=ct.target.iOS17)
    def prog(x):
        divisor = mb.add(x=x, y=np.int32(1))
        return mb.mul(x=mb.real_div(x=np.int32(7), y=divisor, name="ratio"), y=np.int32(2))

    executor = MILProgramExecutor(_save(prog, tmp_path / "div.mlpackage"))
    assert executor.slabs == [("add", "real_div", "mul")]
    monkeypatch.setattr(slabs, "SLICE_ELEMENTS", 1)
    x = np.arange(12, dtype=np.int32).reshape(4, 3)
    (out,) = executor.run({"x": x}).values()
    np.testing.assert_array_equal(out, (7 // (x + 1)) * 2)
    x[2, 1] = -1  # one row divides by zero
    failure = r"MIL op 'real_div' \(name 'ratio'\) failed .*ZeroDivisionError"
    with pytest.raises(MILExecutionError, match=failure):
        executor.run({"x": x})
    assert slab_calls == [True, None]  # the second run raised from inside the slab


def test_over_items_runs_each_item_once_in_serial_mode(monkeypatch) -> None:
    monkeypatch.setattr(parallel, "WORKERS", 2)
    seen: list[tuple[int, bool, bool]] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        with lock:
            seen.append((i, parallel.in_serial(), parallel.splits(1 << 20, 1 << 30)))

    parallel.over_items(work, 9)
    assert sorted(i for i, _, _ in seen) == list(range(9))
    assert all(serial and not splits for _, serial, splits in seen)
    assert not parallel.in_serial() and parallel.splits(1 << 20, 1 << 30)

    def fail(i: int) -> None:
        if i == 3:
            raise KeyError("item 3")

    with pytest.raises(KeyError, match="item 3"):
        parallel.over_items(fail, 9)
    assert not parallel.in_serial()
