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

#: What the encoder's one long slab must hold: all six layers and the pooling after them.
ENCODER_SLAB = {"linear": 37, "softmax": 6, "gelu": 6, "layer_norm": 14, "reshape": 24, "shape": 10}


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
    longest = max(sliced.slabs, key=len)
    assert {op: longest.count(op) for op in ENCODER_SLAB} == ENCODER_SLAB
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
        n = mb.layer_norm(x=w, axes=[0, 2], epsilon=np.float32(1e-5))  # across rows
        e = mb.reduce_mean(x=mb.abs(x=n), axes=[1])  # within rows, one axis fewer
        return w, r, mb.expand_dims(x=e, axes=[0], name="f")  # a new axis 0

    executor = MILProgramExecutor(_save(prog, tmp_path / "rows.mlpackage"))
    assert executor.slabs == [("mul", "add", "softmax"), ("relu", "exp"), ("abs", "reduce_mean")]
    monkeypatch.setattr(slabs, "SLICE_ELEMENTS", 1)  # one row a slice
    rng = np.random.default_rng(0)
    x, m = rng.standard_normal((4, 6, 8), dtype=np.float32), rng.standard_normal((4, 1, 8), dtype=np.float32)
    got = executor.run({"x": x, "m": m})
    assert slab_calls == [True, True, True]

    def softmax(v: np.ndarray, axis: int) -> np.ndarray:
        e = np.exp(v - v.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    w = np.exp(np.maximum(softmax(softmax(2 * x + m, -1), 0).transpose(1, 0, 2), 0))
    np.testing.assert_allclose(got["w"], w, rtol=1e-6)
    np.testing.assert_allclose(got["r"], w.sum(0, keepdims=True), rtol=1e-6)
    n = (w - w.mean((0, 2), keepdims=True)) / np.sqrt(w.var((0, 2), keepdims=True) + 1e-5)
    np.testing.assert_allclose(got["f"], np.abs(n).mean(1)[None], rtol=1e-4)
    whole = MILProgramExecutor(executor.path, use_slabs=False).run({"x": x, "m": m})
    assert [k for k in whole if not np.array_equal(got[k], whole[k])] == []


def test_an_input_of_one_row_goes_whole_to_every_slice(tmp_path: Path, monkeypatch, slab_calls) -> None:
    """A one-row input broadcast over the batch (position embeddings); what is computed from it
    alone is the whole batch's value too. Rows of another count make the slab run op by op."""

    @mb.program(input_specs=[mb.TensorSpec((4, 8)), mb.TensorSpec((1, 8))], opset_version=ct.target.iOS17)
    def prog(x, m):
        scaled = mb.mul(x=m, y=np.float32(3.0), name="scaled")  # from the one row alone
        return mb.exp(x=mb.add(x=x, y=scaled), name="out"), mb.softmax(x=scaled, axis=0)

    executor = MILProgramExecutor(_save(prog, tmp_path / "broadcast.mlpackage"))
    assert executor.slabs == [("mul", "add", "exp")]
    monkeypatch.setattr(slabs, "SLICE_ELEMENTS", 1)
    x, m = np.arange(32, dtype=np.float32).reshape(4, 8) / 10, np.linspace(-1, 1, 8, dtype=np.float32)[None]
    got = executor.run({"x": x, "m": m})
    assert slab_calls == [True]
    np.testing.assert_allclose(got["out"], np.exp(x + 3 * m), rtol=1e-6)
    whole = MILProgramExecutor(executor.path, use_slabs=False).run({"x": x, "m": m})
    assert all(np.array_equal(got[k], whole[k]) and got[k].shape == whole[k].shape for k in whole)


def test_inputs_of_other_row_counts_leave_the_environment_alone(monkeypatch) -> None:
    monkeypatch.setattr(slabs, "SLICE_ELEMENTS", 1)  # one row a slice, were the rows one count
    slab = slabs.Slab(0, 2, ("a", "b"), ("d",), (slabs.ROWS,) * 2, (("a", "b"), ("c",)), (("c",), ("d",)))
    env = {"a": np.ones((4, 3)), "b": np.ones((2, 3))}
    assert not slabs.run(slab, env, lambda *args: pytest.fail("nothing may run"))
    assert sorted(env) == ["a", "b"]


@pytest.mark.parametrize(
    ("row_factor", "tile_rows", "sliced"),
    [(1, 1, True), (2, 1, False), (1, 2, False)],
    ids=["reshape and tile keep the rows", "a reshape mixes rows", "a tile repeats rows"],
)
def test_reshapes_to_computed_shapes_join_a_slab_when_they_keep_the_rows(
    tmp_path: Path, monkeypatch, slab_calls, row_factor: int, tile_rows: int, sliced: bool
) -> None:
    """The encoder's pattern: ``shape`` -> ``gather`` -> ``concat`` -> ``reshape``. Inside a slab
    ``shape`` reports the whole batch, so a reshape that keeps axis 0 is row-wise; one that does
    not makes the slab run op by op (same results either way)."""

    @mb.program(input_specs=[mb.TensorSpec((4, 6, 8))], opset_version=ct.target.iOS17)
    def prog(x):
        a = mb.relu(x=x)
        rows = mb.gather(x=mb.shape(x=a), indices=np.int32(0), axis=0)
        rows = mb.mul(x=rows, y=np.int32(row_factor))
        target = mb.concat(values=[mb.expand_dims(x=rows, axes=[0]), np.array([-1, 4], np.int32)], axis=0)
        b = mb.exp(x=mb.reshape(x=a, shape=target))
        width = mb.slice_by_index(x=mb.shape(x=b), begin=[1], end=[3])
        reps = mb.concat(values=[np.array([tile_rows], np.int32), mb.real_div(x=width, y=width)], axis=0)
        return mb.sqrt(x=mb.tile(x=b, reps=reps), name="out")

    executor = MILProgramExecutor(_save(prog, tmp_path / "reshape.mlpackage"))
    kinds = ("relu", "shape", "gather", "mul", "expand_dims", "concat", "reshape", "exp")
    assert executor.slabs == [(*kinds, "shape", "slice_by_index", "real_div", "concat", "tile", "sqrt")]
    monkeypatch.setattr(slabs, "SLICE_ELEMENTS", 1)
    x = np.random.default_rng(1).standard_normal((4, 6, 8), dtype=np.float32)
    got = executor.run({"x": x})["out"]
    assert slab_calls == [sliced]
    expected = np.sqrt(np.tile(np.exp(np.maximum(x, 0).reshape(4 * row_factor, -1, 4)), (tile_rows, 1, 1)))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert np.array_equal(got, MILProgramExecutor(executor.path, use_slabs=False).run({"x": x})["out"])


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


def test_no_slice_is_one_row(monkeypatch) -> None:
    """numpy sends a one-row product to BLAS's gemv, which sums in another order than a GEMM's
    row: a slice of one row could round a linear (the encoder's pooled tail) unlike the batch."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 384), dtype=np.float32)
    weight = rng.standard_normal((384, 64), dtype=np.float32)
    assert not np.array_equal(x[:1] @ weight, (x @ weight)[:1])  # why
    monkeypatch.setattr(slabs, "SLICE_ELEMENTS", 1)
    slab = slabs.Slab(0, 2, ("x",), ("z",), (slabs.ROWS,) * 2, (("x",), ("y",)), (("y",), ("z",)))
    seen: list[tuple[int, int | None]] = []

    def evaluate(index: int, env: dict, rows: int | None, total: int | None) -> None:
        seen.append((index, rows))
        if index == 0:
            env["y"] = env["x"] @ weight
        else:
            env["z"] = env["y"] * 2

    env = {"x": x}
    assert slabs.run(slab, env, evaluate)
    assert min(rows or 0 for _, rows in seen) == 2
    assert sum(rows or 0 for index, rows in seen if index == 0) == 5
    assert np.array_equal(env["z"], (x @ weight) * 2)


def test_small_batches_run_side_by_side_with_the_same_bits(bundles: Path, monkeypatch) -> None:
    """MILRunner.run_all shares batches of a few rows over the CPUs (each in one thread) and
    runs larger ones one at a time; the outputs are those of ``run``, batch by batch."""
    from verify.backends.runners import MILRunner, Runner

    bundle = bundles / "encoder_v1"
    runner = MILRunner(ENCODER_V1, bundle / ENCODER_V1.artifact("coreml-fp16").filename)
    golden = read_golden(bundle / "golden")
    names = [spec.name for spec in ENCODER_V1.inputs]
    order = length_order(golden)
    threads: list[list[str]] = []
    real = parallel.over_items

    def over_items(work, count):
        threads.append([])

        def recorded(i: int) -> None:
            threads[-1].append(threading.current_thread().name)
            work(i)

        real(recorded, count)

    monkeypatch.setattr(parallel, "WORKERS", 2)
    monkeypatch.setattr(parallel, "over_items", over_items)
    small = [golden.batch(names, order[i : i + 1]) for i in (0, 40, 79, 5)]  # short to 256 tokens
    got = runner.run_all(small)
    assert len(threads) == 1 and len(threads[0]) == 4  # the batches went to the pool of two
    for feed, outputs in zip(small, got, strict=True):
        expected = Runner.run_all(runner, [feed])[0]
        assert all(np.array_equal(outputs[k], expected[k]) for k in expected)
    threads.clear()
    runner.run_all([golden.batch(names, order[:64]), golden.batch(names, order[64:])])
    assert all(len(items) > 1 for items in threads)  # the slabs shared rows, not the batches
