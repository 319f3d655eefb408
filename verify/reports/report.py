"""Render reports: a rich table for people, JSON for machines."""

from __future__ import annotations

import json
from pathlib import Path

from verify.result import FAIL, PASS, SKIP
from verify.verifier import BundleReport

_STYLE = {PASS: "green", FAIL: "bold red", SKIP: "yellow"}


def print_table(reports: list[BundleReport], console) -> None:
    from rich.markup import escape
    from rich.table import Table

    for report in reports:
        table = Table(title=f"{report.path}  ({report.contract})", title_justify="left", expand=False)
        table.add_column("check", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("detail", overflow="fold")
        for check in report.checks:
            status = f"[{_STYLE[check.status]}]{check.status.upper()}[/]"
            backend = check.details.get("backend")
            detail = escape(check.message) + (f"  [dim]({escape(backend)})[/]" if backend else "")
            table.add_row(escape(check.name), status, detail)
        console.print(table)


def print_worst_texts(reports: list[BundleReport], console, shown: int = 5) -> None:
    """For each audited entry that failed (or else the one worst by its first metric), its worst texts."""
    from rich.markup import escape
    from rich.table import Table

    for report in reports:
        audited = [c for c in report.checks if "worst_texts" in c.details]
        chosen = [c for c in audited if c.failed] or audited[:1]
        for check in chosen:
            table = Table(title=escape(f"worst texts: {check.name}"), title_justify="left")
            rows = check.details["worst_texts"][:shown]
            fields = [k for k in (rows[0] if rows else {}) if k not in ("text", "index")]
            for column in ("#", *fields, "text"):
                table.add_column(column, overflow="fold")
            for row in rows:
                values = [f"{row[f]:.4g}" for f in fields]
                table.add_row(str(row["index"] + 1), *values, escape(row["text"][:160]))
            console.print(table)


def print_explanations(reports: list[BundleReport], console) -> None:
    """For each explained artifact: the failure source (or worst op) and how the error grows after it."""
    from rich.markup import escape
    from rich.table import Table

    for report in reports:
        for check in report.checks:
            growth = check.details.get("growth")
            if not growth or "curve" not in check.details:
                continue
            source = check.details.get("first_nonfinite") or check.details.get("source")
            title = f"{check.name}: error growth from the {'failure source' if source else 'worst op'}"
            table = Table(title=escape(title), title_justify="left")
            for column in ("op #", "op", "type", "torch module", "SNR dB", "inputs dB", "max abs"):
                table.add_column(column, overflow="fold")
            for row in growth:
                table.add_row(
                    str(row["index"]),
                    escape(row["name"]),
                    row["op_type"],
                    escape(row["module"]),
                    "NaN/Inf" if row["nonfinite"] else f"{row['snr_db']:.1f}",
                    f"{row['input_snr_db']:.1f}",
                    f"{row['max_abs']:.3g}",
                )
            console.print(table)
            console.print(
                f"[dim]op floor {check.details['floor_db']:g} dB; "
                f"{check.details['compared_ops']}/{check.details['reference_ops']} ops compared, "
                f"{check.details['rewritten_ops']} rewritten under the same name and not judged[/]"
            )


def summary_line(reports: list[BundleReport]) -> str:
    checks = [c for r in reports for c in r.checks]
    counts = {status: sum(c.status == status for c in checks) for status in (PASS, FAIL, SKIP)}
    failed = [f"{r.path.name}:{c.name}" for r in reports for c in r.checks if c.failed]
    line = f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped"
    return line + (f" — failing: {', '.join(failed)}" if failed else "")


def to_json(reports: list[BundleReport], exit_code: int) -> dict:
    return {
        "exit_code": exit_code,
        "passed": exit_code == 0,
        "bundles": [
            {
                "path": str(r.path),
                "contract": r.contract,
                "checks": [
                    {"name": c.name, "status": c.status, "message": c.message, "details": c.details}
                    for c in r.checks
                ],
            }
            for r in reports
        ],
    }


def write_json(path: Path, reports: list[BundleReport], exit_code: int) -> None:
    path.write_text(json.dumps(to_json(reports, exit_code), indent=1, default=float) + "\n")
