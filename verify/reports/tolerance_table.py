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


def psnr_rows(report: dict) -> list[str]:
    """Each artifact's worst PSNR and SNR (over batch 1/7/64) against the gates peers state."""
    from verify.compare import PSNR_PEER_GATES

    gates = sorted({limit for _, limit in PSNR_PEER_GATES})
    lines = [
        "| bundle | artifact | output | PSNR dB | SNR dB | "
        + " | ".join(f">= {g:g} dB" for g in gates)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(gates),
    ]
    for bundle in report["bundles"]:
        for check in bundle["checks"]:
            details = check["details"]
            if "/numerics[" not in check["name"] or details.get("psnr_db") is None:
                continue
            head, output = check["name"].split("[", 1)
            snr = min(s["snr_db"] for s in details["per_batch"].values())
            marks = " | ".join("yes" if details["psnr_db"] >= g else "**no**" for g in gates)
            lines.append(
                f"| {bundle['contract']} | {head.removesuffix('/numerics')} | {output.rstrip(']')} | "
                f"{details['psnr_db']:.1f} | {snr:.1f} | {marks} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m verify.reports.tolerance_table REPORT.json", file=sys.stderr)
        return 2
    report = json.loads(Path(args[0]).read_text())
    print("\n".join([*rows(report), "", *psnr_rows(report)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
