"""On macOS 14.4+ with the Neural Engine allowed: the share of a Core ML artifact's ops and of its
estimated cost that MLComputePlan places on the Neural Engine, against the contract's floor."""

from __future__ import annotations

from pathlib import Path

from contracts import ArtifactSpec
from verify.backends.macos.compute_plan import PlacedOp, neural_engine_share, planned_ops
from verify.result import CheckResult, passed, skipped, verdict

#: Compute unit settings under which the Neural Engine may run ops.
ENGINE_UNITS = ("CPU_AND_NE", "ALL")


def judge_neural_engine(name: str, artifact: ArtifactSpec, ops: list[PlacedOp], units: str) -> CheckResult:
    op_share, cost_share = neural_engine_share(ops)
    summary = (
        f"{op_share:.0%} of {len(ops)} ops and {cost_share:.0%} of the estimated cost "
        f"on the Neural Engine ({units})"
    )
    floor = artifact.min_neural_engine_share
    if floor is None:
        return passed(
            name, f"{summary}; the contract states no floor yet", op_share=op_share, cost_share=cost_share
        )
    problems = [] if cost_share >= floor else [f"{summary}, below the contract's {floor:.0%}"]
    return verdict(name, problems, f"{summary} (>= {floor:.0%})", op_share=op_share, cost_share=cost_share)


def check_neural_engine(artifact: ArtifactSpec, path: Path, units: str) -> CheckResult:
    name = f"{artifact.key}/neural-engine"
    try:
        ops = planned_ops(path, units)
    except Exception as exc:  # MLComputePlan needs macOS 14.4+ and coremltools 8.1+
        return skipped(name, f"MLComputePlan unavailable: {type(exc).__name__}: {str(exc)[:160]}")
    return judge_neural_engine(name, artifact, ops, units)
