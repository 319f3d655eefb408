"""Run a Core ML ML Program with numpy, op by op, where Core ML itself cannot run (Linux).

The ``.mlpackage`` is read with coremltools' milproto loader into a pymil ``Program`` (const
weights become numpy arrays), every op of the main function is checked against the op
registry at load time, consts and ``constexpr_*`` weights (affine / block-wise dequantisation,
LUT palettes) are materialised once, and each :meth:`MILProgramExecutor.run` walks the ops in
program order with the numpy functions in :mod:`verify.backends.mil.ops`. Runs of row-wise ops
go a slice of rows at a time (:mod:`verify.backends.mil.slabs`), with the same results.

Numerics, and how they differ from a real device
------------------------------------------------
* fp32 programs are evaluated in float32 (float32 GEMMs, float32 reductions). Results match the
  PyTorch float32 reference to ~1e-6, and the Core ML CPU fp32 path to a similar degree; they
  are not bit-exact with any device (summation order, BLAS blocking, erf/exp implementations).
* fp16 programs are *emulated*: every op computes in float32 from fp16 inputs, and each output
  whose MIL dtype is fp16 is rounded to float16 (as ``astype(np.float16)`` would; :mod:`.half`)
  before the next op reads it. fp16 consts keep their fp16 values. This models fp16 *storage*
  between ops only. The GPU and the Neural Engine differ in ways this does not model:

  - accumulation precision: ANE matmul/conv accumulate in reduced precision (fp16 or wider
    but not fp32-exact), GPUs typically accumulate fp16 GEMMs in fp32 with their own blocking;
    here every dot product, softmax sum and layer_norm mean is accumulated in float32 (numpy's
    pairwise or BLAS order);
  - intermediates inside an op are float32 here (e.g. ``exp(x - max)`` in softmax, the
    variance in layer_norm), but may be fp16 on device;
  - fused ops: the Core ML compiler fuses patterns (linear + activation, attention blocks,
    layer_norm) and skips the fp16 rounding between the fused parts; it may also reorder or
    rewrite ops;
  - transcendental functions: gelu (EXACT uses a float32 rational erf here, error < 4e-7),
    softmax's exp, tanh, sigmoid and rsqrt use device-specific approximations, and fp16
    subnormals may be flushed to zero on device.

  So fp16 results here are an approximation of device numerics (typically within a few fp16
  ulps per op), useful to bound fp16 error, not to reproduce device outputs bit for bit.
* Compressed weights (int8 / int4 / palettised) are decompressed exactly as the op definitions
  state, in the output dtype; the device may instead dequantise on the fly inside the kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from verify.backends.mil import half, slabs
from verify.backends.mil import ops as _ops
from verify.backends.mil.errors import MILExecutionError, UnsupportedOpError
from verify.backends.traced import GraphOp, Observer

_CONST_OPS = frozenset({"const"})


@dataclass
class _Step:
    fn: Callable[..., Any]
    ctx: _ops.OpContext
    static: dict[str, Any]
    dynamic: list[tuple[str, str]]  # (input name, var name)
    tuples: list[tuple[str, list[tuple[bool, Any]]]]  # (input name, [(is_var, var name | value)])
    outputs: list[tuple[str, np.dtype, tuple]]  # (var name, dtype, declared shape)
    upcast: bool
    consts: tuple[str, ...] = ()  # names of the const inputs (weights carry the torch parameter path)
    release: list[str] = field(default_factory=list)
    slab_kind: str | None = None  # how it may join a slab (slabs.ROWS, SHAPES, CHECKED), or None


def _np_dtype(var: Any) -> np.dtype:
    from coremltools.converters.mil.mil import types

    return np.dtype(types.nptype_from_builtin(var.dtype))


def _const_value(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    return np.asarray(value)


def _upcast(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype == np.float16:
        return half.cast(value, np.dtype(np.float32))
    return value


def _shape_ok(declared: tuple, actual: tuple) -> bool:
    if len(declared) != len(actual):
        return False
    pairs = zip(declared, actual, strict=True)
    return all(not isinstance(d, int | np.integer) or int(d) == a for d, a in pairs)


class MILProgramExecutor:
    """Evaluate the main function of a Core ML ML Program (``.mlpackage``) with numpy.

    ``registry`` overrides the op registry (default :data:`verify.backends.mil.ops.REGISTRY`);
    ``submodel`` picks one model of a Pipeline package; ``use_slabs=False`` runs every op on the
    whole batch (:mod:`verify.backends.mil.slabs`; the results are the same bits).
    Raises :class:`UnsupportedOpError` at construction if any op has no implementation.
    """

    def __init__(
        self,
        path: Path | str,
        registry: Mapping[str, Callable[..., Any]] | None = None,
        submodel: int | None = None,
        use_slabs: bool = True,
    ) -> None:
        import coremltools as ct
        from coremltools.converters.mil.frontend.milproto.load import load

        self.path = Path(path)
        self._registry = _ops.REGISTRY if registry is None else registry
        model = ct.models.MLModel(str(self.path), skip_model_load=True)
        spec = model.get_spec()
        if submodel is not None:  # one model of a Pipeline; its weights share the package
            if spec.WhichOneof("Type") != "pipeline":
                raise ValueError(f"{self.path}: not a Pipeline (found {spec.WhichOneof('Type')})")
            spec = spec.pipeline.models[submodel]
        if spec.WhichOneof("Type") != "mlProgram":
            raise ValueError(f"{self.path}: not an ML Program (found {spec.WhichOneof('Type')})")
        program = load(spec, spec.specificationVersion, file_weights_dir=model.weights_dir)
        fname = spec.description.defaultFunctionName or "main"
        function = program.functions[fname]
        self._opset = int(function.opset_version) if function.opset_version is not None else 0
        operations = list(function.operations)

        # Refuse unsupported ops before anything runs (nested blocks included).
        used: set[str] = set()
        for op in self._walk(operations):
            if op.op_type in _CONST_OPS:
                continue
            if op.op_type not in self._registry or op.blocks:
                raise UnsupportedOpError(op.op_type, self.path)
            used.add(op.op_type)
        self._ops_used = frozenset(used)

        self._inputs = [(name, _np_dtype(var), var.shape) for name, var in function.inputs.items()]
        self._ranges = self._shape_ranges(spec)
        self._enumerated = self._enumerated_shapes(spec)
        self._consts: dict[str, Any] = {}
        self._steps: list[_Step] = []
        shapes: set[str] = set()  # variables that hold shapes (slabs.SHAPES)
        for op in operations:
            if op.op_type in _CONST_OPS:
                self._consts[op.outputs[0].name] = _const_value(op.outputs[0].val)
            elif op.op_type.startswith("constexpr_"):
                self._materialise(op)
            else:
                self._steps.append(self._compile(op, shapes))
        self._outputs = [v.name for v in function.outputs]
        self._plan_release()
        self._slabs = (
            slabs.plan(
                [self._reads(step) for step in self._steps],
                [[name for name, _, _ in step.outputs] for step in self._steps],
                [step.slab_kind for step in self._steps],
                self._outputs,
            )
            if use_slabs
            else {}
        )

    # -- public -------------------------------------------------------------------------------

    @property
    def ops_used(self) -> set[str]:
        """Op types the program evaluates (``const`` excluded)."""
        return set(self._ops_used)

    @property
    def input_names(self) -> list[str]:
        return [name for name, _, _ in self._inputs]

    @property
    def output_names(self) -> list[str]:
        return list(self._outputs)

    @property
    def slabs(self) -> list[tuple[str, ...]]:
        """The op types of each slab (:mod:`verify.backends.mil.slabs`), in program order."""
        kinds = [step.ctx.op_type for step in self._steps]
        return [tuple(kinds[slab.start : slab.stop]) for slab in self._slabs.values()]

    def graph(self) -> list[GraphOp]:
        """The evaluated ops in program order (consts and constexpr weights folded away)."""
        return [
            GraphOp(
                step.ctx.op_type,
                step.ctx.name,
                tuple(self._reads(step)),
                tuple(name for name, _, _ in step.outputs),
                step.consts,
            )
            for step in self._steps
        ]

    def run(self, inputs: Mapping[str, Any], observe: Observer | None = None) -> dict[str, np.ndarray]:
        """Evaluate the program; returns ``{output name: array}`` in the outputs' MIL dtypes.
        ``observe(op_type, op_name, outputs)``, when given, sees every op's outputs as they are made.

        Inputs are converted to the declared dtype when that is a same-kind cast (int64 ids to
        int32, float64 to float32); a missing input, another dtype, a shape outside the declared
        ranges or not among the enumerated shapes raises ``ValueError``. A failing op raises
        :class:`MILExecutionError`.
        """
        env = self._bind(inputs)
        index = 0
        while index < len(self._steps):
            slab = self._slabs.get(index) if observe is None else None
            if slab is not None and slabs.run(slab, env, self._evaluate_in_slab):
                done = range(slab.start, slab.stop)
            else:
                self._evaluate(self._steps[index], env, observe)
                done = range(index, index + 1)
            for step in done:
                for name in self._steps[step].release:
                    env.pop(name, None)
            index = done.stop

        return {name: self._lookup(env, name) for name in self._outputs}

    def _bind(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        env: dict[str, Any] = {}
        for name, dtype, declared in self._inputs:
            if name not in inputs:
                raise ValueError(f"{self.path}: missing input {name!r} (expects {self.input_names})")
            value = np.asarray(inputs[name])
            if value.dtype != dtype:
                if not np.can_cast(value.dtype, dtype, casting="same_kind"):
                    raise ValueError(f"{self.path}: input {name!r} is {value.dtype}, expected {dtype}")
                value = value.astype(dtype)
            if not _shape_ok(declared, value.shape):
                raise ValueError(f"{self.path}: input {name!r} has shape {value.shape}, expected {declared}")
            ranges = self._ranges.get(name, ())  # none: no range check
            for dim, (low, high) in zip(value.shape, ranges, strict=False):
                if dim < low or (high >= 0 and dim > high):
                    raise ValueError(
                        f"{self.path}: input {name!r} shape {value.shape} outside the allowed range"
                    )
            allowed = self._enumerated.get(name)
            if allowed and value.shape not in allowed:
                shown = ", ".join("x".join(map(str, shape)) for shape in sorted(allowed))
                raise ValueError(
                    f"{self.path}: input {name!r} shape {value.shape} is not one of the enumerated {shown}"
                )
            env[name] = value
        return env

    def _evaluate(
        self,
        step: _Step,
        env: dict[str, Any],
        observe: Observer | None = None,
        rows: int | None = None,
        total: int | None = None,
    ) -> None:
        """Run one step on ``env`` and store its outputs there. In a slab: ``rows``, the slice's
        rows when the outputs are sliced (their declared shape is then checked past axis 0);
        ``total``, the batch's rows when an input is sliced (``ops.SLICED`` adapts the op)."""
        kwargs = dict(step.static)
        for arg, var in step.dynamic:
            kwargs[arg] = _upcast(env[var]) if step.upcast else env[var]
        for arg, items in step.tuples:
            vals = tuple(env[v] if is_var else v for is_var, v in items)
            kwargs[arg] = tuple(_upcast(v) for v in vals) if step.upcast else vals
        fn = step.fn
        if total is not None and step.ctx.op_type in _ops.SLICED:
            fn = _ops.SLICED[step.ctx.op_type](fn, rows, total)
        try:
            result = fn(step.ctx, **kwargs)
            results = result if isinstance(result, tuple) else (result,)
            if len(results) != len(step.outputs):
                raise ValueError(f"returned {len(results)} outputs, expected {len(step.outputs)}")
            for (name, dtype, declared), value in zip(step.outputs, results, strict=True):
                value = np.asarray(value)
                if value.dtype != dtype:
                    value = half.cast(value, dtype)  # fp16 storage emulation happens here
                if rows is None:
                    shape_ok = _shape_ok(declared, value.shape)
                else:
                    shape_ok = value.shape[:1] == (rows,) and _shape_ok(declared[1:], value.shape[1:])
                if not shape_ok:
                    raise ValueError(f"output {name!r} has shape {value.shape}, declared {declared}")
                env[name] = value
            if observe is not None:
                observe(step.ctx.op_type, step.ctx.name, {name: env[name] for name, _, _ in step.outputs})
        except (MILExecutionError, _ops.NotRowWise):
            raise
        except Exception as exc:  # every failure is reported with its op
            raise MILExecutionError(
                step.ctx.op_type, step.ctx.name, f"{type(exc).__name__}: {exc}", self.path
            ) from exc

    def _evaluate_in_slab(self, index: int, env: dict[str, Any], rows: int | None, total: int | None) -> None:
        step = self._steps[index]
        self._evaluate(step, env, rows=rows, total=total)
        for name in step.release:
            env.pop(name, None)

    # -- loading ------------------------------------------------------------------------------

    @staticmethod
    def _walk(operations: list) -> Any:
        for op in operations:
            yield op
            for block in op.blocks:
                yield from MILProgramExecutor._walk(list(block.operations))

    @staticmethod
    def _shape_ranges(spec: Any) -> dict[str, list[tuple[int, int]]]:
        ranges: dict[str, list[tuple[int, int]]] = {}
        for feature in spec.description.input:
            if feature.type.WhichOneof("Type") != "multiArrayType":
                continue
            sizes = feature.type.multiArrayType.shapeRange.sizeRanges
            if sizes:
                ranges[feature.name] = [(int(r.lowerBound), int(r.upperBound)) for r in sizes]
        return ranges

    @staticmethod
    def _enumerated_shapes(spec: Any) -> dict[str, set[tuple[int, ...]]]:
        shapes: dict[str, set[tuple[int, ...]]] = {}
        for feature in spec.description.input:
            if feature.type.WhichOneof("Type") == "multiArrayType":
                enumerated = feature.type.multiArrayType.enumeratedShapes.shapes
                if enumerated:
                    shapes[feature.name] = {tuple(int(d) for d in s.shape) for s in enumerated}
        return shapes

    def _context(self, op: Any) -> _ops.OpContext:
        return _ops.OpContext(op.op_type, op.name, self._opset, tuple(_np_dtype(v) for v in op.outputs))

    def _materialise(self, op: Any) -> None:
        """Evaluate a constexpr op from its const inputs, once."""
        kwargs = {}
        for arg, var in op.inputs.items():
            if var.name not in self._consts:
                raise MILExecutionError(op.op_type, op.name, f"input {arg!r} is not constant", self.path)
            kwargs[arg] = self._consts[var.name]
        try:
            value = self._registry[op.op_type](self._context(op), **kwargs)
            out = op.outputs[0]
            value = np.asarray(value).astype(_np_dtype(out), copy=False)
            if not _shape_ok(out.shape, value.shape):
                raise ValueError(f"shape {value.shape}, declared {out.shape}")
        except Exception as exc:
            raise MILExecutionError(op.op_type, op.name, f"{type(exc).__name__}: {exc}", self.path) from exc
        self._consts[out.name] = value

    def _compile(self, op: Any, shapes: set[str]) -> _Step:
        upcast = op.op_type not in _ops.NO_UPCAST
        static: dict[str, Any] = {}
        consts: list[str] = []
        dynamic: list[tuple[str, str]] = []
        tuples: list[tuple[str, list[tuple[bool, Any]]]] = []
        for arg, var in op.inputs.items():
            if isinstance(var, list | tuple):
                items = []
                for v in var:
                    if v.name in self._consts:
                        c = self._consts[v.name]
                        items.append((False, _upcast(c) if upcast else c))
                    else:
                        items.append((True, v.name))
                tuples.append((arg, items))
            elif var.name in self._consts:
                c = self._consts[var.name]
                static[arg] = _upcast(c) if upcast else c  # fp16 weights widened once, values unchanged
                consts.append(var.name)
            else:
                dynamic.append((arg, var.name))
        outputs = [(v.name, _np_dtype(v), tuple(v.shape)) for v in op.outputs]
        return _Step(
            self._registry[op.op_type],
            self._context(op),
            static,
            dynamic,
            tuples,
            outputs,
            upcast,
            tuple(consts),
            slab_kind=self._slab_kind(op, static, shapes),
        )

    def _slab_kind(self, op: Any, static: dict[str, Any], shapes: set[str]) -> str | None:
        """How the op may join a slab (:mod:`verify.backends.mil.slabs`); ``shapes``, the variables
        known to hold shapes so far, gains the op's outputs when it computes shapes."""
        dynamic = {arg: var for arg, var in op.inputs.items() if arg not in static}
        variables = [v for var in dynamic.values() for v in (var if isinstance(var, list | tuple) else [var])]
        variables = [v for v in variables if v.name not in self._consts]  # a tuple's consts are not read
        ranks = [len(v.shape) for v in op.outputs]
        if op.op_type == "shape" or (
            op.op_type in _ops.SHAPE_ARITHMETIC
            and variables
            and all(v.name in shapes for v in variables)
            and all(rank <= 1 for rank in ranks)
        ):
            shapes.update(v.name for v in op.outputs)
            return slabs.SHAPES
        if len(ranks) != 1 or ranks[0] < 2 or any(isinstance(var, list | tuple) for var in dynamic.values()):
            return None
        (out_rank,) = ranks
        if op.op_type in _ops.SLICED:  # reshape, tile: x holds the rows, the rest is a shape
            x = dynamic.get("x")
            others = [var for arg, var in dynamic.items() if arg != "x"]
            if x is None or len(x.shape) < 2 or any(var.name not in shapes for var in others):
                return None
            return slabs.CHECKED
        rule = _ops.ROW_WISE.get(op.op_type)
        if rule is None:
            return None
        weights = _ops.WEIGHTS.get(op.op_type, frozenset())
        for arg, value in static.items():
            if arg in weights or not isinstance(value, np.ndarray):
                continue
            if value.ndim == out_rank and value.shape[0] != 1:
                return None  # a const with rows of its own
        in_ranks = [len(var.shape) for var in dynamic.values()]
        if not in_ranks or min(in_ranks) < 2:
            return None
        if (len(in_ranks) > 1 or op.op_type not in _ops.CHANGES_RANK) and set(in_ranks) != {out_rank}:
            return None  # a lower rank broadcasts: its axis 0 is not the rows
        return slabs.ROWS if rule(static, in_ranks[0], out_rank) else None

    @staticmethod
    def _reads(step: _Step) -> list[str]:
        tuple_vars = [v for _, items in step.tuples for is_var, v in items if is_var]
        return [var for _, var in step.dynamic] + tuple_vars

    def _plan_release(self) -> None:
        """Drop each intermediate from the environment after its last reader."""
        last: dict[str, int] = {}
        for i, step in enumerate(self._steps):
            for var in self._reads(step):
                last[var] = i
        keep = set(self._outputs)
        for var, i in last.items():
            if var not in keep:
                self._steps[i].release.append(var)

    def _lookup(self, env: dict[str, Any], name: str) -> np.ndarray:
        return env[name] if name in env else np.asarray(self._consts[name])
