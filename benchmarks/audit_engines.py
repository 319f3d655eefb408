"""The corpus audit's engines side by side: local, Ray with one worker, Ray with two.

    python -m benchmarks.audit_engines artifacts [--count 4096] [--only onnx-int8] [--rounds 2]

Builds a corpus from installed packages (benchmarks/corpus.py), then runs each engine in its own
child process, interleaved round by round. Per run: the wall time, the seconds to the first
merged block (Ray: cluster start, actors loading the sessions), and the steady rate after the
first block. Prints a Markdown table of medians and each Ray row's ratio to local in the same round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.corpus import corpus_texts

ENGINES = {  # name -> (engine, workers, CPUs per worker)
    "local": ("local", None, None),
    "ray, 1 worker (1 CPU, 1 thread)": ("ray", 1, 1.0),
    "ray, 2 workers (0.5 CPU, 1 thread each)": ("ray", 2, 0.5),
}

CHILD = """
import json, sys, time
from pathlib import Path
start = time.perf_counter()
marks = []
from verify.audit import AuditRequest, plan_audit, run_audit
from verify.bundle import open_bundle, find_bundles
from verify.corpus import chunked, read_texts
artifacts, corpus, only, engine, workers, cpus = sys.argv[1:7]
roots = find_bundles(Path(artifacts))
request = AuditRequest(corpus=Path(corpus), only=tuple(only.split(",")))
progress = lambda texts: marks.append((time.perf_counter() - start, texts))
if engine == "local":
    plan, tokenizer = plan_audit([open_bundle(r) for r in roots], request)
    _, seen = run_audit(plan, tokenizer, chunked(read_texts(request.corpus), request.block), 64, progress)
else:
    from verify.audit_ray import RayOptions, run_ray_audit
    _, seen = run_ray_audit(roots, request, RayOptions(None, int(workers), float(cpus)), progress)
wall = time.perf_counter() - start
first = marks[0][0]
steady = (seen - marks[0][1]) / (marks[-1][0] - first)
print(json.dumps({"wall": wall, "first_block": first, "steady": steady, "texts": seen}))
"""


def run(artifacts: Path, corpus: Path, only: str, engine: tuple) -> dict:
    name, workers, cpus = engine
    command = [sys.executable, "-c", CHILD, str(artifacts), str(corpus), only, name, str(workers), str(cpus)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.audit_engines", description=__doc__.splitlines()[0]
    )
    parser.add_argument("artifacts", type=Path)
    parser.add_argument("--count", type=int, default=4096, help="texts (4 blocks of 1,024 by default)")
    parser.add_argument("--only", default="onnx-int8", help="audited artifacts (default: the server pair)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    runs: dict[str, list[dict]] = {name: [] for name in ENGINES}
    with tempfile.TemporaryDirectory() as scratch:
        corpus = Path(scratch) / "corpus.txt"
        texts = corpus_texts(args.count, set())
        corpus.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
        for round_number in range(args.rounds):
            for name, engine in ENGINES.items():
                runs[name].append(run(args.artifacts, corpus, args.only, engine))
                print(f"round {round_number + 1} {name}: {runs[name][-1]}", file=sys.stderr)
    average = sum(map(len, texts)) / len(texts)
    print(f"{len(texts)} texts, {average:.0f} characters on average, --only {args.only}")
    print("| engine | wall (s) | to first block (s) | steady texts/s | steady × local | wall × local |")
    print("|---|---|---|---|---|---|")
    local = runs["local"]
    for name, results in runs.items():

        def median(key: str, results=results) -> float:
            return statistics.median(r[key] for r in results)

        steady_ratio = statistics.median(
            r["steady"] / b["steady"] for r, b in zip(results, local, strict=True)
        )
        wall_ratio = statistics.median(r["wall"] / b["wall"] for r, b in zip(results, local, strict=True))
        print(
            f"| {name} | {median('wall'):.1f} | {median('first_block'):.1f} | {median('steady'):.1f} "
            f"| {steady_ratio:.2f} | {wall_ratio:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
