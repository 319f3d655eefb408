"""MIL executor against onnxruntime on the same fp32 programs and the same golden inputs.

    python -m benchmarks.mil_vs_ort artifacts [--repeats 5]

Each repeat runs the whole golden set once per backend, alternating backends, in length-sorted
batches of 64, exactly as verify-contract feeds them. Prints medians and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from contracts import REGISTRY
from contracts.environment import quiet_libraries
from golden.store import read_golden


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mil_vs_ort")
    parser.add_argument("artifacts", type=Path, nargs="?", default=Path("artifacts"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args(argv)
    quiet_libraries()
    from verify.checks.numerics import run_goldens
    from verify.runners import MILRunner, OnnxRunner

    print("| model | golden rows | MIL executor (s, median) | onnxruntime fp32 (s, median) | ratio |")
    print("|---|---|---|---|---|")
    for name, contract in REGISTRY.items():
        bundle = args.artifacts / name
        golden = read_golden(bundle / "golden")
        runners = {
            "mil": MILRunner(contract, bundle / contract.artifact("coreml-fp32").filename),
            "ort": OnnxRunner(contract, bundle / contract.artifact("onnx-fp32").filename),
        }
        times: dict[str, list[float]] = {key: [] for key in runners}
        for _ in range(args.repeats + 1):  # the first round warms up and is dropped
            for key, runner in runners.items():
                start = time.perf_counter()
                run_goldens(runner, contract, golden, args.batch)
                times[key].append(time.perf_counter() - start)
        mil, ort = (statistics.median(times[k][1:]) for k in ("mil", "ort"))
        print(f"| {name} | {golden.rows} | {mil:.3f} | {ort:.3f} | {mil / ort:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
