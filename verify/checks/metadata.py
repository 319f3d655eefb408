"""Metadata: every key the contract requires, with the value it requires."""

from __future__ import annotations

from contracts import Contract, ContractError, resolve_metadata
from verify.result import CheckResult, failed, verdict


def check_metadata(
    name: str, contract: Contract, facts: dict[str, str], found: dict[str, str]
) -> CheckResult:
    try:
        expected = resolve_metadata(contract, facts)
    except ContractError as exc:
        return failed(name, str(exc))
    problems = []
    for key, value in expected.items():
        if key not in found:
            problems.append(f"missing key {key!r}")
        elif found[key] != value:
            shown = found[key] if len(found[key]) <= 60 else found[key][:57] + "..."
            problems.append(f"{key!r} is {shown!r}, contract wants {value[:60]!r}")
    return verdict(name, problems, f"{len(expected)} keys")
