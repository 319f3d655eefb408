"""Check results: what every check returns and what reports render."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass
class CheckResult:
    name: str  # e.g. "onnx-fp32/numerics[embedding]"
    status: str  # PASS | FAIL | SKIP
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == FAIL


def passed(name: str, message: str = "", **details: Any) -> CheckResult:
    return CheckResult(name, PASS, message, details)


def failed(name: str, message: str, **details: Any) -> CheckResult:
    return CheckResult(name, FAIL, message, details)


def skipped(name: str, message: str, **details: Any) -> CheckResult:
    return CheckResult(name, SKIP, message, details)


def verdict(name: str, problems: list[str], ok_message: str = "", **details: Any) -> CheckResult:
    """Fail listing ``problems`` if there are any, else pass."""
    if problems:
        return failed(name, "; ".join(problems), **details)
    return passed(name, ok_message, **details)


class UnusableInput(Exception):
    """The input cannot be verified at all (exit code 2): missing path, unreadable contract."""
