"""Corpus audit throughput and peak memory, on a corpus built from installed packages.

    python -m benchmarks.audit artifacts [--count 12000] [--only onnx-int8,coreml-int8]

Builds the corpus (benchmarks/corpus.py, never the golden texts), runs ``verify-contract
ARTIFACTS --corpus`` as a child process, and prints a Markdown table: texts/s per audited
artifact (model time only; tokenization and the reference are shared), the whole run's wall
time, and the child's peak RSS. Run it at two corpus sizes to see that memory stays flat.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.corpus import corpus_texts


def audit(artifacts: Path, corpus: Path, only: str, report: Path) -> tuple[float, float]:
    """(wall seconds, peak RSS in MiB) of one ``verify-contract --corpus`` child."""
    command = [sys.executable, "-m", "verify.cli", str(artifacts), "--no-project", "--quiet"]
    command += ["--corpus", str(corpus), "--json", str(report)]
    command += ["--only", only] if only else []
    start = time.perf_counter()
    subprocess.run(command, check=False, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, peak_kib / 1024


def table(report: dict) -> list[str]:
    lines = ["| audited | texts/s | min cos | q0.1 % cos | kNN recall@10 | flips | top-10 | verdict |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for bundle in report["bundles"]:
        for check in bundle["checks"]:
            if not check["name"].startswith("audit/"):
                continue
            stats, rate = check["details"]["statistics"], check["details"].get("texts_per_second")

            def cell(key: str, stats=stats) -> str:
                return f"{stats[key]:.5g}" if key in stats else "—"

            metrics = ("min_cosine", "q001_cosine", "knn_recall10", "flip_rate", "top10_overlap")
            lines.append(
                f"| `{check['name']}` | {f'{rate:.0f}' if rate else '—'} | "
                + " | ".join(cell(m) for m in metrics)
                + f" | {check['status']} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.audit", description=__doc__.splitlines()[0])
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--count", type=int, default=12_000)
    parser.add_argument("--only", default="")
    args = parser.parse_args(argv)
    from golden.generate import load_corpus

    with tempfile.TemporaryDirectory() as scratch:
        corpus, report = Path(scratch) / "corpus.txt", Path(scratch) / "audit.json"
        texts = corpus_texts(args.count, set(load_corpus()))
        corpus.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        wall, peak = audit(args.artifacts, corpus, args.only, report)
        data = json.loads(report.read_text())
    print(f"{len(texts)} texts, {sum(map(len, texts)) / len(texts):.0f} characters on average")
    print(f"wall {wall:.0f} s ({len(texts) / wall:.1f} texts/s overall), peak RSS {peak:.0f} MiB")
    print("\n".join(table(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
