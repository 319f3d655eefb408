"""MIL executor against onnxruntime on the same fp32 programs and the same golden inputs.

    python -m benchmarks.mil_vs_ort artifacts [--repeats 5] [--op-by-op]

Each repeat runs the whole golden set once per backend, alternating backends, in length-sorted
batches of 64, exactly as verify-contract feeds them (``verify.checks.numerics.run_goldens``).
The first round warms up and is dropped. Prints medians and the ratio; ``python -m benchmarks``
reports the same measurement. ``--op-by-op`` adds the executor without slabs to the same rounds
(``verify.backends.mil.slabs``; same outputs), and its ratio to onnxruntime.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from benchmarks.timing import time_interleaved
from contracts import REGISTRY
from contracts.environment import quiet_libraries
from golden.store import read_golden


def measure(
    artifacts: Path, repeats: int = 5, batch: int = 64, op_by_op: bool = False
) -> list[dict[str, object]]:
    """One row per bundle: golden rows, median seconds per backend, median ratio MIL / onnxruntime
    (with ``op_by_op``, also the executor without slabs: ``op_by_op_s``, ``op_by_op_ratio``)."""
    from verify.backends.runners import MILRunner, OnnxRunner
    from verify.checks.numerics import run_goldens

    rows = []
    for name, contract in REGISTRY.items():
        bundle = artifacts / name
        golden = read_golden(bundle / "golden")
        runners = {
            "mil": MILRunner(contract, bundle / contract.artifact("coreml-fp32").filename),
            "ort": OnnxRunner(contract, bundle / contract.artifact("onnx-fp32").filename),
        }
        if op_by_op:
            runners["op_by_op"] = MILRunner(
                contract, bundle / contract.artifact("coreml-fp32").filename, use_slabs=False
            )
        runs = {
            key: (lambda r=runner: run_goldens(r, contract, golden, batch)) for key, runner in runners.items()
        }
        times = time_interleaved(runs, repeats, warmup=1)
        per_round = [m / o for m, o in zip(times["mil"], times["ort"], strict=True)]
        row: dict[str, object] = {
            "model": name,
            "rows": golden.rows,
            "mil_s": statistics.median(times["mil"]),
            "ort_s": statistics.median(times["ort"]),
            "ratio": statistics.median(per_round),
            "ratio_range": (min(per_round), max(per_round)),
        }
        if op_by_op:
            plain = [m / o for m, o in zip(times["op_by_op"], times["ort"], strict=True)]
            row["op_by_op_s"] = statistics.median(times["op_by_op"])
            row["op_by_op_ratio"] = statistics.median(plain)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mil_vs_ort")
    parser.add_argument("artifacts", type=Path, nargs="?", default=Path("artifacts"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--op-by-op", action="store_true", help="also time the executor without slabs")
    args = parser.parse_args(argv)
    quiet_libraries()
    extra = " | op by op (s, median) | ratio op by op" if args.op_by_op else ""
    print(f"| model | golden rows | MIL executor (s, median) | onnxruntime fp32 (s, median) | ratio{extra} |")
    print("|---|---|---|---|---|" + ("---|---|" if args.op_by_op else ""))
    for row in measure(args.artifacts, args.repeats, args.batch, args.op_by_op):
        low, high = row["ratio_range"]  # type: ignore[misc]
        cells = [
            row["model"],
            row["rows"],
            f"{row['mil_s']:.3f}",
            f"{row['ort_s']:.3f}",
            f"{row['ratio']:.2f}x ({low:.2f}-{high:.2f})",
        ]
        if args.op_by_op:
            cells += [f"{row['op_by_op_s']:.3f}", f"{row['op_by_op_ratio']:.2f}x"]
        print("| " + " | ".join(str(c) for c in cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
