"""macOS 14.4+ only: where Core ML plans to run each op of an ML Program (``MLComputePlan``), and
its estimated share of the work. Never runs on Linux."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: MLComputeDevice class name -> the device it stands for.
_DEVICES = {
    "MLNeuralEngineComputeDevice": "neural_engine",
    "MLGPUComputeDevice": "gpu",
    "MLCPUComputeDevice": "cpu",
}


@dataclass(frozen=True)
class PlacedOp:
    operator: str
    device: str  # neural_engine | gpu | cpu | unknown
    cost: float | None  # share of the model's estimated work, 0..1; None when Core ML gives none


def planned_ops(path: Path, compute_units: str) -> list[PlacedOp]:
    """Each op of the main function (consts excluded) with its preferred device and cost."""
    import coremltools as ct
    from coremltools.models.compute_plan import MLComputePlan

    units = getattr(ct.ComputeUnit, compute_units)
    model = ct.models.MLModel(str(path), compute_units=units)
    plan = MLComputePlan.load_from_path(model.get_compiled_model_path(), units)
    program = plan.model_structure.program
    if program is None:
        raise ValueError(f"{path.name}: not an ML Program")
    placed = []
    for operation in program.functions["main"].block.operations:
        if operation.operator_name == "const":
            continue
        usage = plan.get_compute_device_usage_for_mlprogram_operation(operation)
        cost = plan.get_estimated_cost_for_mlprogram_operation(operation)
        device = (
            _DEVICES.get(type(usage.preferred_compute_device).__name__, "unknown") if usage else "unknown"
        )
        placed.append(PlacedOp(operation.operator_name, device, cost.weight if cost else None))
    return placed


def neural_engine_share(ops: list[PlacedOp]) -> tuple[float, float]:
    """(share of ops, share of estimated cost) the Neural Engine is preferred for."""
    if not ops:
        return 0.0, 0.0
    on_engine = [op for op in ops if op.device == "neural_engine"]
    total_cost = sum(op.cost or 0.0 for op in ops)
    cost_share = sum(op.cost or 0.0 for op in on_engine) / total_cost if total_cost else 0.0
    return len(on_engine) / len(ops), cost_share
