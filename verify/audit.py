"""Corpus audit: a team's own texts through every artifact and every pipeline, streamed.

The reference is each bundle's fp32 ONNX artifact: the goldens prove it equal to torch (the
``onnx-fp32/numerics`` checks), so no torch is needed. Texts stream in blocks of ``block`` texts:
memory stays flat whatever the corpus size. Per audited entry:

- encoder artifacts: cosine of ``embedding`` to the reference (min, 0.1 % quantile from a
  DDSketch with 1 % relative accuracy on 1 − cos, mean), kNN recall@10 against the reference's
  neighbours (exact within each block; and against the whole corpus for a uniform sample of
  queries, ``verify.neighbours``), and the PersonalityModel's decisions on the artifact's
  embeddings against those on the reference's (the reference PersonalityModel for both);
- PersonalityModel artifacts: decisions on the reference embeddings;
- pipelines: decisions of encoder artifact → PersonalityModel artifact against reference →
  reference, the cosine of their embeddings.

Decisions: the share of sigmoid decisions at 0.5 flipped, and the mean top-10 overlap. Each
entry keeps its 20 worst texts.
"""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contracts import Contract
from contracts.pipeline import PipelineContract, combination_key
from verify.neighbours import QUERIES, BlockNeighbours, QuerySet, recall_summary
from verify.result import CheckResult, verdict

REFERENCE = "onnx-fp32"
NEIGHBOURS = 10
WORST = 20
QUANTILE = 0.001
SKETCH_ACCURACY = 0.01
#: Metrics an audit budget may name, with their direction.
AUDIT_METRICS = {
    "min_cosine": ">=",
    "q001_cosine": ">=",
    "mean_cosine": ">=",
    "knn_recall10": ">=",
    "global_knn_recall10": ">=",
    "flip_rate": "<=",
    "top10_overlap": ">=",
}


@dataclass
class CosineStats:
    """A block's cosines (``add``) or a whole audit's (``merge`` of blocks, in corpus order). A block
    keeps its distances 1 − cos; merging puts them into the audit's DDSketch, value by value, so
    every engine builds the same sketch from the same blocks."""

    count: int = 0
    total: float = 0.0
    minimum: float = 1.0
    distances: np.ndarray | None = None  # a block's 1 - cos, floored at 1e-12
    sketch: Any = None  # DDSketch of every merged block's distances

    def add(self, cosines: np.ndarray) -> None:
        self.count += len(cosines)
        self.total += float(cosines.sum())
        self.minimum = min(self.minimum, float(cosines.min()))
        distances = np.maximum(1.0 - cosines, 1e-12)
        self.distances = distances if self.distances is None else np.concatenate([self.distances, distances])

    def merge(self, other: CosineStats) -> None:
        """Fold in another block's statistics: sums and minimum exactly, its distances into the sketch."""
        if not other.count:
            return
        from ddsketch import DDSketch

        if self.sketch is None:
            self.sketch = DDSketch(relative_accuracy=SKETCH_ACCURACY)
        self.count += other.count
        self.total += other.total
        self.minimum = min(self.minimum, other.minimum)
        for distance in other.distances if other.distances is not None else ():
            self.sketch.add(float(distance))

    def values(self) -> dict[str, float]:
        if not self.count or self.sketch is None:
            return {}
        return {
            "min_cosine": self.minimum,
            "q001_cosine": 1.0 - float(self.sketch.get_quantile_value(1.0 - QUANTILE)),
            "mean_cosine": self.total / self.count,
        }

    def to_wire(self) -> dict:
        distances = self.distances if self.distances is not None else np.zeros(0)
        return {
            "count": self.count,
            "total": self.total,
            "minimum": self.minimum,
            "distances": distances.tolist(),
        }

    @classmethod
    def from_wire(cls, data: dict) -> CosineStats:
        distances = np.asarray(data["distances"], dtype=np.float64)
        return cls(int(data["count"]), float(data["total"]), float(data["minimum"]), distances)


@dataclass
class DecisionStats:
    rows: int = 0
    flips: int = 0
    decisions: int = 0
    top10: float = 0.0

    def add(self, logits: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """Accumulate; returns each row's flipped decisions."""
        flipped = ((logits > 0) != (reference > 0)).sum(axis=1)
        self.rows += len(logits)
        self.flips += int(flipped.sum())
        self.decisions += logits.size
        top_a = np.argsort(-logits, axis=1)[:, :10]
        top_r = np.argsort(-reference, axis=1)[:, :10]
        self.top10 += sum(len(set(a) & set(r)) / 10 for a, r in zip(top_a, top_r, strict=True))
        return flipped

    def merge(self, other: DecisionStats) -> None:
        self.rows += other.rows
        self.flips += other.flips
        self.decisions += other.decisions
        self.top10 += other.top10

    def to_wire(self) -> dict:
        return {"rows": self.rows, "flips": self.flips, "decisions": self.decisions, "top10": self.top10}

    @classmethod
    def from_wire(cls, data: dict) -> DecisionStats:
        return cls(int(data["rows"]), int(data["flips"]), int(data["decisions"]), float(data["top10"]))

    def values(self) -> dict[str, float]:
        if not self.rows:
            return {}
        return {"flip_rate": self.flips / self.decisions, "top10_overlap": self.top10 / self.rows}


@dataclass
class Entry:
    """One audited artifact or pipeline."""

    name: str  # "audit/onnx-int8[embedding]", "audit/pipeline/coreml-int8+coreml-int8[logits]"
    bounds: dict[str, float]
    cosine: CosineStats | None = None
    decisions: DecisionStats | None = None
    recall_sum: float = 0.0
    recall_rows: int = 0
    worst: list = field(default_factory=list)  # heap of (-badness, index, text, values)
    seconds: float = 0.0
    corpus_wide: dict[str, float] = field(default_factory=dict)  # set once every block is merged

    def add_cosines(self, cosines: np.ndarray) -> None:
        assert self.cosine is not None, f"{self.name} keeps no cosines"
        self.cosine.add(cosines)

    def add_decisions(self, logits: np.ndarray, reference: np.ndarray) -> np.ndarray:
        assert self.decisions is not None, f"{self.name} keeps no decisions"
        return self.decisions.add(logits, reference)

    def add_recall(self, recall: np.ndarray) -> None:
        self.recall_sum += float(recall.sum())
        self.recall_rows += len(recall)

    def keep_worst(self, badness: np.ndarray, texts: list[str], first_index: int, values: dict) -> None:
        for row in np.argsort(-badness, kind="stable")[:WORST]:
            self._offer(
                (
                    float(badness[row]),
                    -(first_index + int(row)),
                    texts[row],
                    {k: float(v[row]) for k, v in values.items()},
                )
            )

    def _offer(self, item: tuple) -> None:
        if len(self.worst) < WORST:
            heapq.heappush(self.worst, item)
        elif item > self.worst[0]:
            heapq.heapreplace(self.worst, item)

    def merge(self, other: Entry, offset: int) -> None:
        """Fold in the same entry's statistics from a block whose first text is text ``offset``.
        Sums are added block by block in corpus order, so any engine that merges the same blocks in
        the same order gets the same floats."""
        if self.cosine is not None and other.cosine is not None:
            self.cosine.merge(other.cosine)
        if self.decisions is not None and other.decisions is not None:
            self.decisions.merge(other.decisions)
        self.recall_sum += other.recall_sum
        self.recall_rows += other.recall_rows
        self.seconds += other.seconds
        for badness, negative_index, text, values in other.worst:
            self._offer((badness, negative_index - offset, text, values))

    def statistics(self) -> dict[str, float]:
        stats = {}
        if self.cosine:
            stats.update(self.cosine.values())
        if self.recall_rows:
            stats["knn_recall10"] = self.recall_sum / self.recall_rows
        stats.update(self.corpus_wide)
        if self.decisions:
            stats.update(self.decisions.values())
        return stats

    def result(self, texts_seen: int, reference_rate: float | None = None) -> CheckResult:
        stats = self.statistics()
        problems = []
        for metric, limit in self.bounds.items():
            if metric in stats and not _within(metric, limit, stats[metric]):
                problems.append(f"{metric} {stats[metric]:.4g} beyond {AUDIT_METRICS[metric]} {limit:g}")
        shown = ", ".join(f"{k} {v:.4g}" for k, v in stats.items())
        worst = [
            {"index": -index, "text": text, **values}
            for _, index, text, values in sorted(self.worst, reverse=True)
        ]
        rate = texts_seen / self.seconds if self.seconds else None
        return verdict(
            self.name,
            problems,
            shown,
            statistics=stats,
            budgets=self.bounds,
            worst_texts=worst,
            texts=texts_seen,
            texts_per_second=rate,
            reference_texts_per_second=reference_rate,
            reference=f"the bundle's {REFERENCE} artifacts, which the goldens prove equal to torch",
        )


def _within(metric: str, limit: float, value: float) -> bool:
    if not np.isfinite(value):
        return False
    return value <= limit if AUDIT_METRICS[metric] == "<=" else value >= limit


def knn_recall(reference: np.ndarray, actual: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    """Per row: the share of its k nearest reference neighbours (cosine, within this block) that are
    also among its k nearest under ``actual``."""
    k = min(k, len(reference) - 1)
    if k < 1:
        return np.ones(len(reference))

    def neighbours(x: np.ndarray) -> np.ndarray:
        unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        similarity = unit @ unit.T
        np.fill_diagonal(similarity, -np.inf)
        return np.argpartition(-similarity, k, axis=1)[:, :k]

    ref, act = neighbours(reference.astype(np.float32)), neighbours(actual.astype(np.float32))
    return np.array([len(set(a) & set(r)) / k for a, r in zip(act, ref, strict=True)])


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)


RunFn = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class AuditPlan:
    """What to run: encoder and PersonalityModel runners by artifact key (the reference included),
    pipeline combinations, budgets per entry."""

    encoder: Contract
    embedding_output: str  # the encoder output that pipelines pass on and cosines are taken of
    encoders: dict[str, RunFn]
    personality: Contract | None = None
    personality_input: str = ""
    personalities: dict[str, RunFn] = field(default_factory=dict)
    combinations: dict[tuple[str, ...], dict[str, float]] = field(default_factory=dict)  # -> bounds
    encoder_bounds: dict[str, dict[str, float]] = field(default_factory=dict)
    personality_bounds: dict[str, dict[str, float]] = field(default_factory=dict)
    logits_output: str = ""
    queries: QuerySet | None = None  # the sample for the corpus-wide kNN recall (verify.neighbours)


@dataclass
class Entries:
    """Every audited entry of a plan, by kind; keys are artifact keys or (encoder, PersonalityModel)."""

    encoders: dict[str, Entry]
    personalities: dict[str, Entry]
    pipelines: dict[tuple[str, ...], Entry]

    @classmethod
    def empty(cls, plan: AuditPlan) -> Entries:
        def entries(keys, name: Callable, bounds: Callable, cosine: bool, decisions: bool) -> dict:
            made = {}
            for key in keys:
                made[key] = Entry(name(key), bounds(key))
                made[key].cosine = CosineStats() if cosine else None
                made[key].decisions = DecisionStats() if decisions else None
            return made

        return cls(
            encoders=entries(
                [k for k in plan.encoders if k != REFERENCE],
                lambda k: f"audit/{k}[{plan.embedding_output}]",
                lambda k: plan.encoder_bounds.get(k, {}),
                cosine=True,
                decisions=plan.personality is not None,
            ),
            personalities=entries(
                [k for k in plan.personalities if k != REFERENCE],
                lambda k: f"audit/{k}[{plan.logits_output}]",
                lambda k: plan.personality_bounds.get(k, {}),
                cosine=False,
                decisions=True,
            ),
            pipelines=entries(
                [c for c in plan.combinations if c != (REFERENCE, REFERENCE)],
                lambda c: f"audit/pipeline/{combination_key(c)}[{plan.logits_output}]",
                lambda c: plan.combinations[c],
                cosine=True,
                decisions=True,
            ),
        )

    def all(self) -> list[Entry]:
        return [*self.encoders.values(), *self.personalities.values(), *self.pipelines.values()]


@dataclass
class BlockAudit:
    """One block's partial statistics: worst-text indices count from the block's first text."""

    texts: int
    entries: Entries
    reference_seconds: float
    neighbours: BlockNeighbours | None = None

    def to_json(self) -> str:
        """The block as JSON, for engines that move it between processes: Python's float repr
        round-trips exactly, so the merged numbers do not change; nothing executable is loaded."""
        entries = [
            {
                "name": entry.name,
                "cosine": entry.cosine.to_wire() if entry.cosine is not None else None,
                "decisions": entry.decisions.to_wire() if entry.decisions is not None else None,
                "recall_sum": entry.recall_sum,
                "recall_rows": entry.recall_rows,
                "worst": [list(item) for item in entry.worst],
                "seconds": entry.seconds,
            }
            for entry in self.entries.all()
        ]
        neighbours = self.neighbours.to_wire() if self.neighbours is not None else None
        return json.dumps(
            {
                "texts": self.texts,
                "reference_seconds": self.reference_seconds,
                "entries": entries,
                "neighbours": neighbours,
            }
        )

    @classmethod
    def from_json(cls, text: str, plan: AuditPlan) -> BlockAudit:
        """A block written by ``to_json`` for the same plan; ValueError if its entries differ."""
        data = json.loads(text)
        entries = Entries.empty(plan)
        wired = data["entries"]
        if [w["name"] for w in wired] != [e.name for e in entries.all()]:
            raise ValueError("an audited block does not match the plan's entries")
        for entry, wire in zip(entries.all(), wired, strict=True):
            entry.cosine = CosineStats.from_wire(wire["cosine"]) if wire["cosine"] is not None else None
            entry.decisions = (
                DecisionStats.from_wire(wire["decisions"]) if wire["decisions"] is not None else None
            )
            entry.recall_sum, entry.recall_rows = float(wire["recall_sum"]), int(wire["recall_rows"])
            entry.worst = [
                (float(b), int(i), str(t), {k: float(v) for k, v in values.items()})
                for b, i, t, values in wire["worst"]
            ]
            heapq.heapify(entry.worst)
            entry.seconds = float(wire["seconds"])
        wired_neighbours = data.get("neighbours")
        neighbours = BlockNeighbours.from_wire(wired_neighbours) if wired_neighbours is not None else None
        return cls(int(data["texts"]), entries, float(data["reference_seconds"]), neighbours)


@dataclass
class AuditTotals:
    """Block audits merged in corpus order. Everything but the timings is independent of where and
    how the blocks ran: sums add block by block, minima and counts exactly, each block's 1 − cos
    values go into one DDSketch, worst-20 lists merge by (badness, position)."""

    entries: Entries
    texts: int = 0
    reference_seconds: float = 0.0
    neighbours: BlockNeighbours | None = None  # each sampled query's nearest texts of the corpus

    @classmethod
    def start(cls, plan: AuditPlan) -> AuditTotals:
        neighbours = BlockNeighbours.empty(plan.queries) if plan.queries is not None else None
        return cls(Entries.empty(plan), neighbours=neighbours)

    def merge(self, block: BlockAudit) -> None:
        for total, part in zip(self.entries.all(), block.entries.all(), strict=True):
            if total.name != part.name:
                raise ValueError(f"audit blocks disagree on their entries: {part.name} is not {total.name}")
            total.merge(part, self.texts)
        if self.neighbours is not None:
            if block.neighbours is None:
                raise ValueError("an audited block carries no corpus-wide neighbours")
            self.neighbours.merge(block.neighbours, self.texts)
        self.texts += block.texts
        self.reference_seconds += block.reference_seconds

    def results(self) -> list[CheckResult]:
        if self.neighbours is not None:
            for key, entry in self.entries.encoders.items():
                entry.corpus_wide = recall_summary(self.neighbours.recall(key, REFERENCE))
        reference_rate = self.texts / self.reference_seconds if self.reference_seconds else None
        return [entry.result(self.texts, reference_rate) for entry in self.entries.all()]


def audit_block(plan: AuditPlan, tokenizer, texts: list[str], batch_size: int) -> BlockAudit:
    """Every entry's statistics on one block of texts; kNN neighbours are found within the block."""
    from verify.tokenization import token_batches

    entries = Entries.empty(plan)
    reference_seconds = 0.0
    batches = token_batches(tokenizer, texts, batch_size)
    embeddings = {}
    for key, runner in plan.encoders.items():
        start = time.perf_counter()
        embeddings[key] = _run_batches(runner, batches, len(texts), plan.embedding_output)
        if key in entries.encoders:
            entries.encoders[key].seconds += time.perf_counter() - start
        else:
            reference_seconds += time.perf_counter() - start
    reference = embeddings[REFERENCE]
    logits: dict[tuple[str, str], np.ndarray] = {}

    def decide(encoder_key: str, personality_key: str) -> np.ndarray:
        pair = (encoder_key, personality_key)
        if pair not in logits:
            runner = plan.personalities[personality_key]
            inputs = embeddings[encoder_key]
            logits[pair] = np.concatenate(
                [
                    runner({plan.personality_input: inputs[i : i + batch_size]})[plan.logits_output]
                    for i in range(0, len(inputs), batch_size)
                ]
            )
        return logits[pair]

    recalls = {key: knn_recall(reference, embeddings[key]) for key in plan.encoders if key != REFERENCE}
    for key, entry in entries.encoders.items():
        cos = cosines(embeddings[key], reference)
        entry.add_cosines(cos)
        entry.add_recall(recalls[key])
        values = {"cosine": cos, "knn_recall10": recalls[key]}
        if plan.personality:
            flipped = entry.add_decisions(decide(key, REFERENCE), decide(REFERENCE, REFERENCE))
            values["flipped"] = flipped
        entry.keep_worst(1.0 - cos, texts, 0, values)
    for key, entry in entries.personalities.items():
        start = time.perf_counter()
        flipped = entry.add_decisions(decide(REFERENCE, key), decide(REFERENCE, REFERENCE))
        entry.seconds += time.perf_counter() - start
        entry.keep_worst(flipped.astype(float), texts, 0, {"flipped": flipped})
    for (encoder_key, personality_key), entry in entries.pipelines.items():
        cos = cosines(embeddings[encoder_key], reference)
        entry.add_cosines(cos)
        entry.add_recall(recalls.get(encoder_key, np.ones(len(texts))))
        flipped = entry.add_decisions(decide(encoder_key, personality_key), decide(REFERENCE, REFERENCE))
        entry.keep_worst(flipped + (1.0 - cos), texts, 0, {"flipped": flipped, "cosine": cos})
    neighbours = (
        BlockNeighbours.of_block(plan.queries, embeddings, texts) if plan.queries is not None else None
    )
    return BlockAudit(len(texts), entries, reference_seconds, neighbours)


def sample_queries(
    plan: AuditPlan, tokenizer, sample: list[tuple[int, str]], texts: int, request: AuditRequest
) -> None:
    """Give ``plan`` the corpus-wide kNN sample, embedded by each of its encoders; none when the
    whole corpus fits one block (the in-block recall is then corpus-wide already)."""
    from verify.tokenization import token_batches

    if not sample or texts <= request.block:
        plan.queries = None
        return

    def embed(texts: list[str]) -> dict[str, np.ndarray]:
        batches = token_batches(tokenizer, texts, request.batch_size)
        return {
            key: _run_batches(runner, batches, len(texts), plan.embedding_output)
            for key, runner in plan.encoders.items()
        }

    plan.queries = QuerySet.embed(sample, embed)


def run_audit(
    plan: AuditPlan,
    tokenizer,
    blocks,
    batch_size: int,
    progress: Callable[[int], None] = lambda texts: None,
) -> tuple[list[CheckResult], int]:
    """Stream ``blocks`` (lists of texts) through the plan in this process; one CheckResult per entry."""
    totals = AuditTotals.start(plan)
    for texts in blocks:
        totals.merge(audit_block(plan, tokenizer, texts, batch_size))
        progress(len(texts))
    return totals.results(), totals.texts


def _run_batches(runner: RunFn, batches, count: int, output: str) -> np.ndarray:
    result: np.ndarray | None = None
    for rows, inputs in batches:
        values = runner(inputs)[output]
        if result is None:
            result = np.zeros((count, values.shape[1]), dtype=np.float32)
        result[rows] = values
    return result if result is not None else np.zeros((count, 0), dtype=np.float32)


def audit_bounds(bounds, overrides: dict[str, float]) -> dict[str, float]:
    """The contract's bounds for the audited metrics, each replaced by the project's where it names one."""
    chosen = {b.metric: b.limit for b in bounds if b.metric in AUDIT_METRICS}
    return {**chosen, **{k: v for k, v in overrides.items() if k in AUDIT_METRICS}}


def check_metric_names(budgets: dict[str, float]) -> None:
    unknown = sorted(set(budgets) - set(AUDIT_METRICS))
    if unknown:
        raise ValueError(f"unknown audit budget(s) {', '.join(unknown)} (known: {', '.join(AUDIT_METRICS)})")


def pipeline_plan(pipeline: PipelineContract) -> tuple[str, str, str]:
    """(encoder output passed on, PersonalityModel input, judged output) of a two-stage pipeline."""
    first, last = pipeline.stages[0], pipeline.stages[-1]
    return first.produces, last.consumes or "", last.produces


# --------------------------------------------------------------------------------------------
# From bundles to a plan
# --------------------------------------------------------------------------------------------


@dataclass
class AuditRequest:
    corpus: Path | str  # a file, or for the Ray engine any URI pyarrow's filesystems read
    column: str = "text"
    block: int = 1024  # texts per block: kNN recall is exact within a block
    batch_size: int = 64
    only: tuple[str, ...] = ()  # artifact keys; empty = all
    budgets: dict[str, float] = field(default_factory=dict)  # project [budgets.audit]: metric -> limit
    pipeline_budgets: dict[str, float] = field(default_factory=dict)  # project [budgets.pipeline]
    ship: dict[str, dict[str, str]] = field(default_factory=dict)
    compute_units: str | None = None
    threads: int = 0  # onnxruntime intra-op threads per session; 0 = onnxruntime's default
    queries: int = QUERIES  # texts sampled for the corpus-wide kNN recall; 0: none


def plan_audit(bundles: list, request: AuditRequest) -> tuple[AuditPlan, object]:
    """The plan for the first pipeline whose first model is among ``bundles``, and the encoder's
    tokenizer. Raises ValueError when no encoder bundle (or its fp32 ONNX reference) is given."""
    from contracts import PIPELINES
    from verify.backends.runners import artifact_runner
    from verify.tokenization import load_tokenizer

    by_name = {b.registered.name: b for b in bundles}
    pipeline = next((p for p in PIPELINES.values() if p.contracts[0] in by_name), None)
    if pipeline is None:
        raise ValueError("--corpus needs an encoder bundle")
    check_metric_names(request.budgets)

    def runners(bundle) -> dict[str, RunFn]:
        chosen: dict[str, RunFn] = {}
        for artifact in bundle.registered.artifacts:
            if artifact.key != REFERENCE and request.only and artifact.key not in request.only:
                continue
            path = bundle.path(artifact.filename)
            if not path.exists():
                if artifact.key == REFERENCE:
                    raise ValueError(f"{bundle.root}: the audit reference {artifact.filename} is missing")
                continue
            model = artifact_runner(bundle.registered, artifact, path, request.compute_units, request.threads)
            chosen[artifact.key] = model.run
        return chosen

    def bounds(bundle, output: str) -> dict[str, dict[str, float]]:
        result = {}
        for artifact in bundle.registered.artifacts:
            tolerance = artifact.tolerance_for(output)
            result[artifact.key] = audit_bounds(tolerance.bounds if tolerance else (), request.budgets)
        return result

    passed_on, consumed, judged = pipeline_plan(pipeline)
    encoder = by_name[pipeline.contracts[0]]
    plan = AuditPlan(
        encoder=encoder.registered,
        embedding_output=passed_on,
        encoders=runners(encoder),
        encoder_bounds=bounds(encoder, passed_on),
        logits_output=judged,
    )
    personality = by_name.get(pipeline.contracts[-1]) if len(pipeline.stages) == 2 else None
    if personality is not None:
        plan.personality = personality.registered
        plan.personality_input = consumed
        plan.personalities = runners(personality)
        plan.personality_bounds = bounds(personality, judged)
        shipped = [
            tuple(models[name] for name in pipeline.contracts)
            for models in request.ship.values()
            if all(name in models for name in pipeline.contracts)
        ]
        for artifacts in dict.fromkeys([*pipeline.combinations, *shipped]):
            if artifacts[0] not in plan.encoders or artifacts[1] not in plan.personalities:
                continue
            contract_bounds = _logit_bounds(pipeline.tolerances_for(artifacts), judged)
            overrides = {**(request.pipeline_budgets if artifacts in shipped else {}), **request.budgets}
            plan.combinations[artifacts] = audit_bounds(contract_bounds, overrides)
    return plan, load_tokenizer(encoder.root)


def _logit_bounds(tolerances, output: str):
    return next((t.bounds for t in tolerances if t.output == output), ())
