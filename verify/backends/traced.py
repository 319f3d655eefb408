"""Programs run op by op with their intermediates in view: the graph as data, and an observer
that sees each op's outputs as they are made (the MIL executor; onnxruntime, every node's output
exposed)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

#: Sees each op's outputs: (op type, op name, {output name: array}).
Observer = Callable[[str, str, dict[str, np.ndarray]], None]


@dataclass(frozen=True)
class GraphOp:
    """One op of a program as a graph node: what it reads and writes, by name."""

    op_type: str
    name: str
    inputs: tuple[str, ...]  # values made by other ops or fed as program inputs
    outputs: tuple[str, ...]
    consts: tuple[str, ...] = ()  # constant inputs (weights), by name


class TracedProgram(Protocol):
    def graph(self) -> list[GraphOp]: ...

    def run(self, inputs: Mapping[str, Any], observe: Observer | None = None) -> dict[str, np.ndarray]: ...


def first_nonfinite_op(program: TracedProgram, inputs: Mapping[str, Any]) -> tuple[str, str] | None:
    """(op type, op name) of the first op whose float output holds NaN or Inf on ``inputs``, the
    usual place an fp16 overflow starts; None when every op stays finite."""
    found: list[tuple[str, str]] = []

    def observe(op_type: str, name: str, outputs: dict[str, np.ndarray]) -> None:
        floats = [v for v in outputs.values() if np.issubdtype(v.dtype, np.floating)]
        if not found and any(not np.isfinite(v).all() for v in floats):
            found.append((op_type, name))

    program.run(inputs, observe)
    return found[0] if found else None
