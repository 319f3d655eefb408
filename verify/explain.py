"""Where an artifact's numerics break: the artifact and its format's fp32 artifact run op by op on
the worst golden rows, their ops matched, and each op's output compared (``--explain KEY``).

The failure source is the first op whose output falls below the artifact's per-op SNR floor while
every input it reads is still above it, as coremltools' ``MLModelValidator`` defines it on macOS.

Matching ops across the two programs:
* ONNX keeps the exporter's tensor names through fp16 conversion and quantisation, so a tensor is
  matched by name. Nodes the quantiser adds (QuantizeLinear, MatMulInteger, ...) have no fp32
  counterpart and are not compared; the node that writes the original tensor name is.
* Core ML renames ops between precisions (``linear_7`` becomes ``linear_7_cast_fp16``, transposes
  are renumbered), so ops are matched by structure: an op with torch weights by its type and its
  weights' names (fp32 and fp16 programs compute gather indices differently), any other op by its
  type and the matched values it reads, in program order. Casts are looked through: fp16
  programs add them at inputs and outputs.
* A value an artifact rewrites under the same name (the int8 ONNX recipe adds an fp32 side path
  after some MatMuls) shows an error that vanishes downstream; such ops are marked and not judged.
Module names: Core ML weights carry the torch parameter path (``bert_encoder_layer_3_..._weight``),
spelled with dots again where the bundle's ONNX fp32 artifact names the same parameter; an op
without weights is reported in the deepest module among the values it reads. ONNX node names
carry the module path (``/encoder/layer.3/attention/self/query/MatMul``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from contracts import ArtifactSpec, Contract
from verify.backends.traced import GraphOp, TracedProgram
from verify.bundle import Bundle
from verify.result import CheckResult, failed, passed, skipped

if TYPE_CHECKING:
    from golden.store import Golden

#: Ops that only change a value's dtype: matched through, never compared on their own.
TRANSPARENT = frozenset({"cast", "Cast"})
#: Suffixes converters add to a weight's torch name.
_WEIGHT_SUFFIXES = ("_quantized", "_palettized", "_to_fp16", "_cast_fp16", "_to_fp32")
#: SNR reported for an output equal to the reference (dB); also the cap for finite comparisons.
EXACT_DB = 200.0
#: An op whose error is this much smaller at every reader was rewritten, not broken (dB).
HEALED_DB = 20.0
#: fp16's largest finite value: larger magnitudes (masking constants) are saturated before comparing.
_FP16_MAX = 65504.0


@dataclass(frozen=True)
class OpDrift:
    """One matched op: how far the artifact's output is from the fp32 program's."""

    index: int  # position among the reference program's ops
    op_type: str
    name: str  # the artifact's op (node) name
    module: str  # torch module path
    snr_db: float
    max_abs: float
    input_snr_db: float  # worst SNR among the matched values it reads (EXACT_DB for program inputs)
    nonfinite: bool = False
    trusted: bool = True  # False: the artifact rewrote this value under the same name
    reads: tuple[int, ...] = ()  # indices of the compared ops whose outputs it reads

    @property
    def drop_db(self) -> float:
        return self.input_snr_db - self.snr_db


@dataclass
class Explanation:
    artifact: str
    reference: str
    rows: list[int]
    floor_db: float
    ops: list[OpDrift] = field(default_factory=list)
    compared: int = 0  # reference ops with a counterpart
    total: int = 0  # reference ops with a float output, casts excluded

    @property
    def source(self) -> OpDrift | None:
        """The first op below the floor whose inputs are all above it."""
        return next(
            (op for op in self._trusted if self._below(op) and op.input_snr_db >= self.floor_db), None
        )

    @property
    def first_nonfinite(self) -> OpDrift | None:
        return next((op for op in self.ops if op.nonfinite), None)

    @property
    def worst(self) -> OpDrift | None:
        """The op whose output is furthest from the fp32 program's (lowest SNR), the first of ties."""
        return min(self._trusted, key=lambda op: (op.snr_db, op.index), default=None)

    @property
    def _trusted(self) -> list[OpDrift]:
        return [op for op in self.ops if op.trusted]

    def _below(self, op: OpDrift) -> bool:
        return op.nonfinite or op.snr_db < self.floor_db

    def growth(self, shown: int = 12) -> list[OpDrift]:
        """From the failure source (else the worst op) to the end: the weighted ops (linear,
        layer_norm, ...), thinned to ``shown`` rows, and the last op."""
        start = self.first_nonfinite or self.source or self.worst
        if start is None:
            return []
        reached = {start.index}
        for op in self.ops:  # program order: readers come after what they read
            if reached.intersection(op.reads):
                reached.add(op.index)
        after = [op for op in self.ops if op.index in reached - {start.index} and _weighted(op)]
        step = max(1, math.ceil(len(after) / shown))
        picked = [start, *after[::step]]
        last = max((op for op in self.ops if op.index in reached), key=lambda op: op.index)
        if last not in picked:
            picked.append(last)
        return picked

    def to_details(self) -> dict[str, Any]:
        def row(op: OpDrift | None) -> dict[str, Any] | None:
            if op is None:
                return None
            fields = asdict(op)
            del fields["reads"]
            return {**fields, "drop_db": op.drop_db}

        return {
            "reference": self.reference,
            "rows": self.rows,
            "floor_db": self.floor_db,
            "compared_ops": self.compared,
            "rewritten_ops": sum(not op.trusted for op in self.ops),
            "reference_ops": self.total,
            "source": row(self.source),
            "first_nonfinite": row(self.first_nonfinite),
            "worst": row(self.worst),
            "growth": [row(op) for op in self.growth()],
            "curve": [[op.index, op.snr_db] for op in self.ops],
        }


def _weighted(op: OpDrift) -> bool:
    return op.op_type.lower() in {"linear", "matmul", "layer_norm", "layernormalization", "gemm"}


def weight_stem(const: str) -> str | None:
    """``bert_encoder_layer_0_attention_self_query`` for ``..._query_weight_to_fp16_quantized``;
    None for a const that is not a torch parameter."""
    stem = const
    changed = True
    while changed:
        changed = False
        for suffix in _WEIGHT_SUFFIXES:
            if stem.endswith(suffix):
                stem, changed = stem[: -len(suffix)], True
    for kind in ("_weight", "_bias", ".weight", ".bias"):
        if stem.endswith(kind):
            return stem[: -len(kind)]
    return None


def dotted_modules(parameter_names: list[str]) -> dict[str, str]:
    """``bert_encoder_layer_0_output_dense`` -> ``bert.encoder.layer.0.output.dense``, from dotted
    parameter names (an ONNX export's initializers)."""
    table = {}
    for name in parameter_names:
        stem = weight_stem(name)
        if stem is not None:
            table[stem.replace(".", "_")] = stem
    return table


def _resolver(ops: list[GraphOp]):
    """Follow values through transparent ops (casts) to the value they carry."""
    alias = {op.outputs[0]: op.inputs[0] for op in ops if op.op_type in TRANSPARENT and op.inputs}

    def resolve(name: str) -> str:
        seen = 0
        while name in alias and seen < len(alias):
            name, seen = alias[name], seen + 1
        return name

    return resolve


def match_by_name(reference: list[GraphOp], candidate: list[GraphOp]) -> dict[str, str]:
    """Reference value -> the candidate's value of the same name (ONNX tensor names)."""
    made = {name for op in candidate for name in op.outputs}
    return {
        name: name for op in reference if op.op_type not in TRANSPARENT for name in op.outputs if name in made
    }


def _stems(op: GraphOp) -> frozenset[str]:
    return frozenset(s for s in (weight_stem(c) for c in op.consts) if s is not None)


def match_by_structure(
    reference: list[GraphOp], candidate: list[GraphOp], program_inputs: set[str]
) -> dict[str, str]:
    """Reference value -> candidate value. An op with torch weights is matched by its op type and
    weights' names (precisions may compute indices differently before a gather); any other op by
    its type and the matched values it reads, in program order."""
    ref_resolve, cand_resolve = _resolver(reference), _resolver(candidate)
    pending: dict[tuple, list[GraphOp]] = {}
    for op in reference:
        if op.op_type not in TRANSPARENT:
            stems = _stems(op)
            ref_key: tuple = (
                (op.op_type, stems) if stems else (op.op_type, tuple(map(ref_resolve, op.inputs)))
            )
            pending.setdefault(ref_key, []).append(op)
    mapped: dict[str, str] = {}  # candidate value -> reference value
    matched: dict[str, str] = {}
    for op in candidate:
        if op.op_type in TRANSPARENT:
            continue
        stems = _stems(op)
        if stems:
            key: tuple = (op.op_type, stems)
        else:
            inputs = [cand_resolve(name) for name in op.inputs]
            translated = [name if name in program_inputs else mapped.get(name) for name in inputs]
            if any(name is None for name in translated):
                continue
            key = (op.op_type, tuple(translated))
        twins = pending.get(key)
        if not twins:
            continue
        twin = twins.pop(0)
        for ref_name, cand_name in zip(twin.outputs, op.outputs, strict=False):
            mapped[cand_name] = ref_name
            matched[ref_name] = cand_name
    return matched


def modules(ops: list[GraphOp], dotted: Mapping[str, str], from_names: bool) -> dict[str, str]:
    """Op name -> torch module path (see the module docstring)."""
    if from_names:  # ONNX: /encoder/layer.0/attention/self/query/MatMul
        return {op.name: ".".join(op.name.strip("/").split("/")[:-1]) for op in ops}
    owner: dict[str, str] = {}  # value -> module of the op that made it
    made_at: dict[str, int] = {}
    result: dict[str, str] = {}
    for index, op in enumerate(ops):
        stems = sorted(_stems(op))
        if stems:
            module = dotted.get(stems[0], stems[0])
            inherited = module.rsplit(".", 1)[0] if "." in module else module
        else:
            read = [i for i in op.inputs if i in owner]  # the deepest module read, then the latest
            chosen = max(read, key=lambda i: (len(re.split(r"[._]", owner[i])), made_at[i]), default=None)
            module = inherited = owner[chosen] if chosen is not None else ""
        result[op.name] = module
        for name in op.outputs:
            owner[name], made_at[name] = inherited, index
    return result


@dataclass
class _Drift:
    """Error of one value, summed over the rows run."""

    signal: float = 0.0  # sum of reference²
    noise: float = 0.0  # sum of (artifact - reference)²
    max_abs: float = 0.0
    nonfinite: bool = False
    mismatched: bool = False  # shapes differ

    def add(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        """Magnitudes past fp16's range (masking constants) are saturated on both sides, so
        -1e9 and -inf agree."""
        if reference.shape != candidate.shape:
            self.mismatched = True
            return
        if not np.isfinite(candidate).all() and np.isfinite(reference).all():
            self.nonfinite = True
            return
        expected = np.clip(reference.astype(np.float64), -_FP16_MAX, _FP16_MAX)
        actual = np.clip(np.nan_to_num(candidate.astype(np.float64), nan=np.inf), -_FP16_MAX, _FP16_MAX)
        noise = actual - expected
        self.signal += float(np.sum(expected**2))
        self.noise += float(np.sum(noise**2))
        if noise.size:
            self.max_abs = max(self.max_abs, float(np.abs(noise).max()))

    @property
    def snr_db(self) -> float:
        if self.nonfinite or self.mismatched:
            return -math.inf
        if self.noise == 0.0:
            return EXACT_DB
        if self.signal == 0.0:
            return -math.inf
        return min(EXACT_DB, 10 * math.log10(self.signal / self.noise))


def explain(
    reference: TracedProgram,
    candidate: TracedProgram,
    row_inputs: list[Mapping[str, np.ndarray]],
    *,
    by_name: bool,
    floor_db: float,
    rows: list[int],
    labels: tuple[str, str],
    dotted: Mapping[str, str] | None = None,
) -> Explanation:
    """Run both programs on each of ``row_inputs`` (one golden row each, ``rows``, unpadded) and
    compare every matched op (see the module docstring)."""
    ref_ops, cand_ops = reference.graph(), candidate.graph()
    program_inputs = {name for one in row_inputs for name in one}
    matched = (
        match_by_name(ref_ops, cand_ops) if by_name else match_by_structure(ref_ops, cand_ops, program_inputs)
    )
    drift: dict[str, _Drift] = {}
    floating: set[str] = set()  # reference values that are floats (the ones worth comparing)
    for one in row_inputs:  # a row at a time: no padding, whose values int8 programs may zero
        kept: dict[str, np.ndarray] = {}

        def keep(op_type: str, name: str, outputs: dict[str, np.ndarray]) -> None:
            for value_name, value in outputs.items():
                if np.issubdtype(value.dtype, np.floating):
                    floating.add(value_name)
                    if value_name in matched:
                        kept[value_name] = value

        reference.run(one, keep)
        by_candidate = {cand: ref for ref, cand in matched.items() if ref in kept}

        def measure(op_type: str, name: str, outputs: dict[str, np.ndarray]) -> None:
            for value_name, value in outputs.items():
                ref_name = by_candidate.get(value_name)
                if ref_name is not None and ref_name in kept:
                    drift.setdefault(ref_name, _Drift()).add(kept.pop(ref_name), value)

        candidate.run(one, measure)
    names = modules(ref_ops, dotted or {}, from_names=by_name)
    cand_name = {ref: op.name for op in cand_ops for ref, cand in matched.items() if cand in op.outputs}
    resolve = _resolver(ref_ops)
    report = Explanation(labels[0], labels[1], rows, floor_db)
    report.total = sum(
        op.op_type not in TRANSPARENT and not floating.isdisjoint(op.outputs) for op in ref_ops
    )
    compared: dict[int, tuple[str, _Drift]] = {}  # reference op index -> its worst output
    for index, op in enumerate(ref_ops):
        stats = [(o, drift[o]) for o in op.outputs if o in drift]
        if op.op_type not in TRANSPARENT and stats:
            compared[index] = min(stats, key=lambda s: s[1].snr_db)
    report.compared = len(compared)
    made_by = {o: index for index in compared for o in ref_ops[index].outputs}
    readers: dict[int, list[int]] = {}
    for index in compared:
        for name in ref_ops[index].inputs:
            if resolve(name) in made_by:
                readers.setdefault(made_by[resolve(name)], []).append(index)

    # A value the artifact rewrote under the same name (an fp32 side path added after it) shows an
    # error that vanishes downstream; a real error persists. So, from the last op back: an op is
    # trusted when the trusted ops reading it (through untrusted ones) are not all HEALED_DB better.
    trusted: dict[int, bool] = {}
    downstream: dict[int, list[float]] = {}  # SNRs of the nearest trusted readers
    for index in sorted(compared, reverse=True):
        snr = compared[index][1].snr_db
        seen = [v for r in readers.get(index, []) for v in downstream[r]]
        trusted[index] = not seen or min(seen) <= snr + HEALED_DB
        downstream[index] = [snr] if trusted[index] else seen

    value_snr: dict[str, float] = {name: EXACT_DB for name in program_inputs}
    for index, (out, worst) in compared.items():
        op = ref_ops[index]
        known = [value_snr[resolve(i)] for i in op.inputs if resolve(i) in value_snr]
        keep_it = trusted[index]
        if keep_it:
            value_snr.update({o: drift[o].snr_db for o in op.outputs if o in drift})
        report.ops.append(
            OpDrift(
                index,
                op.op_type,
                cand_name.get(out, op.name),
                names.get(op.name, ""),
                worst.snr_db,
                worst.max_abs,
                min(known, default=EXACT_DB),
                worst.nonfinite,
                keep_it,
                tuple(sorted({made_by[resolve(i)] for i in op.inputs if resolve(i) in made_by})),
            )
        )
    return report


#: Golden rows explained: the worst ones by the artifact's own outputs.
EXPLAINED_ROWS = 3


def worst_rows(golden: Golden, per_batch: Mapping[int, Mapping[str, np.ndarray]], count: int) -> list[int]:
    """The ``count`` golden rows whose outputs are furthest from the goldens (lowest cosine over
    every output and batch size); the first rows when nothing was run."""
    score = np.ones(golden.rows)
    for outputs in per_batch.values():
        for name, actual in outputs.items():
            expected = golden.tensors.get(name)
            if expected is None or actual.shape != expected.shape:
                continue
            a = actual.reshape(len(actual), -1).astype(np.float64)
            e = expected.reshape(len(expected), -1).astype(np.float64)
            with np.errstate(all="ignore"):
                cosine = (a * e).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(e, axis=1))
            score = np.minimum(score, np.nan_to_num(cosine, nan=-2.0))
    return [int(r) for r in np.argsort(score, kind="stable")[:count]]


def traced_program(fmt: str, path: Path) -> TracedProgram:
    if fmt == "onnx":
        from verify.backends.onnx_trace import OnnxTrace

        return OnnxTrace(path)
    from verify.backends.mil import MILProgramExecutor

    return MILProgramExecutor(path)


def _parameter_names(bundle: Bundle, contract: Contract) -> list[str]:
    """Dotted torch parameter names, from the bundle's ONNX fp32 export (empty when absent)."""
    try:
        import onnx

        path = bundle.path(contract.artifact("onnx-fp32").filename)
        return [i.name for i in onnx.load(str(path), load_external_data=False).graph.initializer]
    except Exception:  # only module names' spelling depends on it
        return []


def explain_artifact(
    bundle: Bundle,
    artifact: ArtifactSpec,
    golden: Golden,
    per_batch: Mapping[int, Mapping[str, np.ndarray]],
    rows: int = EXPLAINED_ROWS,
) -> CheckResult:
    """``KEY/explain``: fails when an op falls below the artifact's op floor while its inputs stay
    above it (the failure source), or an op makes NaN/Inf; else passes, naming the worst op."""
    contract = bundle.registered
    name = f"{artifact.key}/explain"
    if artifact.op_floor is None:
        return skipped(
            name,
            f"{artifact.key} is the reference the other {artifact.format} artifacts are explained against",
        )
    reference_spec = contract.artifact(f"{artifact.format}-fp32")
    picked = worst_rows(golden, per_batch, rows)
    names = [spec.name for spec in contract.inputs]
    try:
        reference = traced_program(artifact.format, bundle.path(reference_spec.filename))
        candidate = traced_program(artifact.format, bundle.path(artifact.filename))
        report = explain(
            reference,
            candidate,
            [golden.batch(names, np.array([row])) for row in picked],
            by_name=artifact.format == "onnx",
            floor_db=artifact.op_floor.limit,
            rows=picked,
            labels=(artifact.key, reference_spec.key),
            dotted=dotted_modules(_parameter_names(bundle, contract)),
        )
    except Exception as exc:  # an unreadable or failing program: its numerics check says more
        return skipped(name, f"cannot run op by op: {type(exc).__name__}: {exc}")
    details = report.to_details()
    where = (
        f"golden rows {', '.join(map(str, picked))} vs {reference_spec.key}; "
        f"{report.compared}/{report.total} ops compared"
    )
    if report.first_nonfinite is not None:
        return failed(name, f"first NaN/Inf: {describe(report.first_nonfinite)} ({where})", **details)
    if report.source is not None:
        return failed(
            name,
            f"failure source: {describe(report.source)}, below the {report.floor_db:g} dB op floor "
            f"while its inputs are at {report.source.input_snr_db:.1f} dB ({where})",
            **details,
        )
    worst = report.worst
    text = f"no failure source; worst op {describe(worst)}" if worst else "no op compared"
    return passed(name, f"{text} (floor {report.floor_db:g} dB; {where})", **details)


def describe(op: OpDrift) -> str:
    module = f" in {op.module}" if op.module else ""
    value = "NaN/Inf" if op.nonfinite else f"SNR {op.snr_db:.1f} dB"
    return f"{op.op_type} {op.name!r}{module}, {value}"
