"""What the corpus-wide kNN recall costs the audit, and what it reports.

    python -m benchmarks.knn_sample artifacts --count 3072 [--queries 512] [--only onnx-int8]

One local audit of ``count`` package texts (never the golden ones), timed in parts: the pre-pass
that picks the query sample, embedding the queries with every audited encoder, one block's
neighbour search and its wire size, and the audit itself; then each encoder's in-block and
corpus-wide recall@10.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from contracts.environment import quiet_libraries


def measure(artifacts: Path, count: int, queries: int, only: tuple[str, ...]) -> dict[str, object]:
    from benchmarks.corpus import corpus_texts
    from golden.generate import load_corpus
    from verify.audit import AuditRequest, plan_audit, run_audit, sample_queries
    from verify.bundle import open_bundle
    from verify.corpus import chunked
    from verify.neighbours import BlockNeighbours, sample_texts

    texts = corpus_texts(count, set(load_corpus()))
    request = AuditRequest(corpus="benchmark", only=only, queries=queries)
    bundles = [open_bundle(artifacts / name) for name in ("encoder_v1", "personality_v1")]
    plan, tokenizer = plan_audit(bundles, request)
    start = time.perf_counter()
    sample, seen = sample_texts(chunked(iter(texts), request.block), queries)
    picked = time.perf_counter()
    sample_queries(plan, tokenizer, sample, seen, request)
    embedded = time.perf_counter()
    assert plan.queries is not None, "the corpus fits one block: no sample is taken"
    rng = np.random.default_rng(0)
    block = {
        key: rng.standard_normal((request.block, 1536)).astype(np.float32) for key in plan.queries.embeddings
    }
    searched = time.perf_counter()
    part = BlockNeighbours.of_block(plan.queries, block, texts[: request.block])
    search_s = time.perf_counter() - searched
    wire = json.dumps(part.to_wire())
    merged = time.perf_counter()
    BlockNeighbours.empty(plan.queries).merge(BlockNeighbours.from_wire(json.loads(wire)), 0)
    merge_s = time.perf_counter() - merged
    audit_start = time.perf_counter()
    results, audited = run_audit(plan, tokenizer, chunked(iter(texts), request.block), request.batch_size)
    audit_s = time.perf_counter() - audit_start
    recalls = {
        r.name: {k: v for k, v in r.details["statistics"].items() if "recall" in k}
        for r in results
        if "global_knn_recall10" in r.details["statistics"]
    }
    return {
        "texts": audited,
        "queries": len(sample),
        "spaces": len(plan.queries.embeddings),
        "pre_pass_s": picked - start,
        "embed_queries_s": embedded - picked,
        "block_search_s": search_s,
        "block_wire_kib": len(wire) / 1024,
        "block_merge_s": merge_s,
        "audit_s": audit_s,
        "recalls": recalls,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.knn_sample")
    parser.add_argument("artifacts", type=Path, nargs="?", default=Path("artifacts"))
    parser.add_argument("--count", type=int, default=3072)
    parser.add_argument("--queries", type=int, default=512)
    parser.add_argument("--only", default="onnx-int8")
    args = parser.parse_args(argv)
    quiet_libraries()
    result = measure(args.artifacts, args.count, args.queries, tuple(args.only.split(",")))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
