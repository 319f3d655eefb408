"""Pipelines: models that run one after another on the device, checked end to end.

A pipeline names its stages (a contract each, joined output → input), the combinations of
artifacts that run together, and bounds on the last stage's output against the fp32 reference:
the last model's goldens on the first model's golden texts (text → reference encoder →
reference PersonalityModel). A combination is held to the bounds of its least precise artifact;
a project (``coreml-contract.toml``, ``[ship.*]``) adds the combinations it ships and may
tighten or loosen those bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.schema import OutputTolerance

#: From most to least precise; a combination is as precise as its least precise artifact.
PRECISIONS = ("fp32", "fp16", "int8")


def precision_of(artifact_key: str) -> str:
    return artifact_key.split("-")[1]  # format-precision[-variant]


@dataclass(frozen=True)
class Stage:
    contract: str  # contract name
    consumes: str | None  # input fed by the previous stage's output; None for the first stage
    produces: str  # output passed on (or, for the last stage, judged)


@dataclass(frozen=True)
class PrecisionBounds:
    precision: str
    tolerances: tuple[OutputTolerance, ...]


@dataclass(frozen=True)
class PipelineContract:
    name: str
    description: str
    stages: tuple[Stage, ...]
    combinations: tuple[tuple[str, ...], ...]  # one artifact key per stage, always checked
    bounds: tuple[PrecisionBounds, ...]

    @property
    def output(self) -> str:
        return self.stages[-1].produces

    @property
    def contracts(self) -> tuple[str, ...]:
        return tuple(stage.contract for stage in self.stages)

    def tolerances_for(self, artifacts: tuple[str, ...]) -> tuple[OutputTolerance, ...]:
        """The bounds of the combination's least precise artifact."""
        lowest = PRECISIONS[max(PRECISIONS.index(precision_of(key)) for key in artifacts)]
        for entry in self.bounds:
            if entry.precision == lowest:
                return entry.tolerances
        raise KeyError(f"pipeline {self.name} sets no bounds for {lowest}")


def combination_key(artifacts: tuple[str, ...]) -> str:
    """``coreml-int8+coreml-int8``: how reports and project files name a combination."""
    return "+".join(artifacts)


def same_precision_combinations(formats: tuple[str, ...], stages: int) -> tuple[tuple[str, ...], ...]:
    """Every combination whose artifacts share one format and one precision."""
    return tuple((f"{fmt}-{precision}",) * stages for fmt in formats for precision in PRECISIONS)
