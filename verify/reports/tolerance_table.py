"""Print the measured error of every artifact beside its contract bound, as Markdown.

    verify-contract artifacts --json report.json
    python -m verify.reports.tolerance_table report.json

The measured value is the tightest bound that would have passed; budget is measured/limit
for errors and (1 - measured)/(1 - limit) for agreement metrics.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rows(report: dict) -> list[str]:
    lines = [
        "| bundle | artifact | output | metric | measured (worst of batch 1/7/64) | limit | budget used |",
        "|---|---|---|---|---|---|---|",
    ]
    for bundle in report["bundles"]:
        for check in bundle["checks"]:
            bounds = check["details"].get("bounds")
            if not bounds:
                continue
            if "/numerics[" not in check["name"]:  # self-goldens have their own section
                continue
            head, output = check["name"].split("[", 1)
            artifact = head.removesuffix("/numerics")
            for metric, bound in bounds.items():
                lines.append(
                    f"| {bundle['contract']} | {artifact} | {output.rstrip(']')} | {metric} | "
                    f"{bound['value']:.4g} | {bound['limit']:g} | {bound['budget_used']:.0%} |"
                )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m verify.reports.tolerance_table REPORT.json", file=sys.stderr)
        return 2
    print("\n".join(rows(json.loads(Path(args[0]).read_text()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
