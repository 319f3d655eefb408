"""Errors raised by the MIL executor."""

from __future__ import annotations

from pathlib import Path


class UnsupportedOpError(Exception):
    """The program uses an op the executor has no implementation for (raised at load time)."""

    def __init__(self, op_type: str, path: Path | str) -> None:
        super().__init__(f"unsupported MIL op '{op_type}' in {path}")
        self.op_type = op_type
        self.path = str(path)


class MILExecutionError(Exception):
    """Evaluating one op failed; the message names the op type and the op name."""

    def __init__(self, op_type: str, op_name: str, detail: str, path: Path | str) -> None:
        super().__init__(f"MIL op '{op_type}' (name '{op_name}') failed in {path}: {detail}")
        self.op_type = op_type
        self.op_name = op_name
        self.path = str(path)
