"""The corpus audit on Ray Data: the same blocks, audited by actors across a cluster.

Ray Data reads the corpus from any path pyarrow's filesystems read (local, ``s3://``, ``gs://``):
``.txt`` and ``.jsonl`` files through the local engine's own line reader, ``.parquet`` files or
directories column by column. A strict streaming repartition cuts the texts into the local engine's
blocks (``block`` consecutive texts, the last one shorter), each block is audited whole by one actor
(which loads the tokenizer and the sessions once) and the driver merges the partial statistics in
corpus order. So the report is the local engine's, number for number; only the timings differ.

Actors that die are restarted by Ray and their block is retried (``max_restarts=-1``,
``max_task_retries=-1``): the merge only ever sees one result per block, in order.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from verify.audit import AuditRequest, AuditTotals, BlockAudit, audit_block, plan_audit, sample_queries
from verify.corpus import FORMATS, CorpusError, column_texts, line_texts
from verify.neighbours import QuerySet, bottom_hashes, merge_bottom

TEXT = "text"
RESULT = "block_audit"
HASH, SEEN = "text_hash", "texts_seen"


class EngineError(ValueError):
    """The Ray engine cannot run: Ray missing, no cluster, too few CPUs, a failed dataset."""


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # a cluster to join; None: RAY_ADDRESS if set, else a local cluster
    workers: int | None = None  # audit actors; None: the cluster's CPUs, less one for reading
    worker_cpus: float = 1.0  # CPUs each actor reserves; its onnxruntime sessions use that many threads


def run_ray_audit(
    bundle_roots: list[Path],
    request: AuditRequest,
    options: RayOptions,
    progress: Callable[[int], None] = lambda texts: None,
) -> tuple[list, int]:
    """Audit ``request.corpus`` on a Ray cluster; the same (results, texts) as ``run_audit``."""
    corpus = str(request.corpus)
    suffix = corpus_format(corpus)
    if "://" not in corpus:
        corpus = str(Path(corpus).resolve())  # Ray's workers do not share the driver's directory
    bundle_roots = [Path(root).resolve() for root in bundle_roots]
    plan, tokenizer = plan_audit([_open(root) for root in bundle_roots], request)  # bad bundles fail here
    ray = _ray()
    _connect(ray, options.address)
    workers = _workers(ray, options)
    request = replace(request, threads=max(1, math.floor(options.worker_cpus)))
    try:
        dataset = _texts(ray, corpus, suffix, request.column)
        if request.queries:  # a pre-pass over the texts alone picks the corpus-wide kNN sample
            sample, texts = _sample(dataset, request.queries)
            sample_queries(plan, tokenizer, sample, texts, request)
        totals = AuditTotals.start(plan)
        dataset = dataset.repartition(target_num_rows_per_block=request.block, strict=True)
        # The plan travels in the class itself, not as constructor arguments in the object store,
        # so a restarted actor never depends on an object that may be gone. Ray Data restarts dead
        # actors and retries their block by default (max_restarts=-1, max_task_retries=-1).
        auditor = type(
            "BlockAuditor",
            (BlockAuditor,),
            {"bundle_roots": [str(r) for r in bundle_roots], "request": request, "queries": plan.queries},
        )
        audited = dataset.map_batches(
            auditor,
            # one task, one batch = one block of `block` consecutive texts: Ray Data would otherwise
            # bundle small blocks into one task, and one actor would audit them all in turn
            batch_size=request.block,
            batch_format="pyarrow",
            concurrency=workers,
            num_cpus=options.worker_cpus,
        )
        short = None
        for row in _rows(audited):
            block = BlockAudit.from_json(row, plan)
            if short is not None:
                raise EngineError(
                    f"Ray Data cut a block of {short} texts before the last one (blocks are "
                    f"{request.block}): the kNN recall would not be the local engine's"
                )
            if block.texts != request.block:
                short = block.texts
            totals.merge(block)
            progress(block.texts)
    except EngineError:
        raise
    except Exception as exc:  # noqa: BLE001 - Ray wraps the worker's error; report its cause in one line
        message = _cause(exc)
        raise EngineError(message if message.startswith(corpus) else f"--engine ray: {message}") from None
    if not totals.texts:
        raise EngineError(f"{corpus}: no texts")
    return totals.results(), totals.texts


def _sample(dataset, count: int) -> tuple[list[tuple[int, str]], int]:
    """The corpus-wide kNN sample (``neighbours.bottom_hashes`` of every block, merged) and the
    number of texts, from one pass of read tasks over the texts."""
    sample: list[tuple[int, str]] = []
    texts = 0
    parts = dataset.map_batches(_bottom, fn_kwargs={"count": count}, batch_format="pyarrow")
    for batch in parts.iter_batches(batch_size=None, batch_format="pyarrow"):
        pairs = zip(batch.column(HASH).to_pylist(), batch.column(TEXT).to_pylist(), strict=True)
        sample = merge_bottom(sample, [(h, t) for h, t in pairs if h >= 0], count)
        texts += sum(batch.column(SEEN).to_pylist())
    return sample, texts


def _bottom(batch: Any, count: int) -> dict[str, list]:
    """A block's smallest-hash texts, and (in one row of hash -1) how many texts it held."""
    texts = batch.column(TEXT).to_pylist()
    kept = bottom_hashes(texts, count)
    return {
        HASH: [h for h, _ in kept] + [-1],
        TEXT: [t for _, t in kept] + [""],
        SEEN: [0] * len(kept) + [len(texts)],
    }


def _rows(audited) -> Iterator[str]:
    """Each block's audit (JSON) as soon as it is merged-ready: no prefetching, which would hold
    a finished block back until the next one is done too."""
    for batch in audited.iter_batches(batch_size=None, prefetch_batches=0, batch_format="pyarrow"):
        yield from batch.column(RESULT).to_pylist()


class BlockAuditor:
    """A Ray Data actor: the plan (tokenizer and sessions) loaded once, then one block per call.
    ``run_ray_audit`` subclasses it with the bundles and the request as class attributes."""

    bundle_roots: list[str]
    request: AuditRequest
    queries: QuerySet | None  # embedded once, by the driver

    def __init__(self) -> None:
        bundles = [_open(Path(root)) for root in self.bundle_roots]
        self.plan, self.tokenizer = plan_audit(bundles, self.request)
        self.plan.queries = self.queries
        self.batch_size = self.request.batch_size

    def __call__(self, batch: Any) -> dict[str, list]:
        texts = batch.column(TEXT).to_pylist()
        block = audit_block(self.plan, self.tokenizer, texts, self.batch_size)
        return {RESULT: [block.to_json()]}


def corpus_format(corpus: str) -> str:
    """The corpus's format from its suffix; a local path must exist. Raises CorpusError."""
    suffix = PurePosixPath(corpus.rstrip("/")).suffix
    if suffix not in FORMATS:
        raise CorpusError(f"{corpus}: unknown corpus format {suffix!r} (use {', '.join(FORMATS)})")
    if "://" not in corpus and not Path(corpus).exists():
        raise CorpusError(f"{corpus}: no such corpus file")
    return suffix


def _texts(ray, corpus: str, suffix: str, column: str):
    """A dataset of one ``text`` column, in corpus order, blank texts dropped as the local engine does."""
    if suffix == ".parquet":
        dataset = ray.data.read_parquet(corpus, columns=[column])
        return dataset.map_batches(_column_texts, fn_kwargs={"column": column}, batch_format="pyarrow")
    dataset = ray.data.read_binary_files(corpus)
    return dataset.map_batches(
        _file_texts, fn_kwargs={"suffix": suffix, "column": column, "source": corpus}, batch_format="pyarrow"
    )


def _column_texts(batch: Any, column: str) -> dict[str, list[str]]:
    return {TEXT: column_texts(batch.column(column).to_pylist())}


def _file_texts(batch: Any, suffix: str, column: str, source: str) -> dict[str, list[str]]:
    texts: list[str] = []
    for data in batch.column("bytes").to_pylist():
        handle = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="strict")
        texts.extend(line_texts(handle, suffix, column, source))
    return {TEXT: texts}


def _open(root: Path):
    from verify.bundle import open_bundle

    return open_bundle(root)


def _ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise EngineError("--engine ray needs Ray: pip install 'coreml-contract[scale]'") from None
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False  # the CLI draws its own
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # errors come back as one line
    return ray


def _connect(ray, address: str | None) -> None:
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    # Ray Data's own actors log a C++ error about their constructor arguments (ray#53727) that
    # concerns no audit; failures reach the driver as exceptions. RAY_BACKEND_LOG_LEVEL overrides.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    try:
        if address:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        else:
            ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    except Exception as exc:  # noqa: BLE001 - ConnectionError, ValueError, RuntimeError, ...
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise EngineError(f"cannot start or join {where}: {_cause(exc)}") from None


def _workers(ray, options: RayOptions) -> int:
    """Actors to start. Reading needs one CPU beside them: actors that reserve every CPU would
    starve the read tasks and the dataset would never move."""
    cpus = float(ray.cluster_resources().get("CPU", 0))
    if options.worker_cpus <= 0:
        raise EngineError(f"--worker-cpus {options.worker_cpus:g}: must be positive")
    spare = cpus - 1
    workers = options.workers or max(1, math.floor(spare / options.worker_cpus))
    if workers < 1 or workers * options.worker_cpus > spare:
        raise EngineError(
            f"{workers} workers of {options.worker_cpus:g} CPUs do not fit a cluster of {cpus:g} CPUs "
            "with one left for reading: lower --workers or --worker-cpus"
        )
    return workers


def _cause(exc: BaseException) -> str:
    """The root error of a Ray failure, on one line. A worker's exception reaches the driver as
    traceback text inside Ray's own errors: the first ``module.Error: message`` line not of Ray is
    the original one."""
    chain: list[BaseException] = []
    link: object = exc
    while isinstance(link, BaseException) and all(link is not seen for seen in chain):
        chain.append(link)
        link = getattr(link, "cause", None) or link.__cause__
    for error in chain:
        for match in _RAISED.finditer(str(error)):
            kind, message = match.groups()
            if not kind.startswith("ray."):
                return message if kind.endswith("CorpusError") else f"{kind.rsplit('.', 1)[-1]}: {message}"
    innermost = chain[-1]
    lines = str(innermost).strip().splitlines()
    return f"{type(innermost).__name__}: {lines[0] if lines else ''}"


_RAISED = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt)): (.+)$", re.MULTILINE)
