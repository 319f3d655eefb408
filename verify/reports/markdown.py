"""A Markdown summary for ``$GITHUB_STEP_SUMMARY``: the verdict, then one table per bundle."""

from __future__ import annotations

from pathlib import Path

from verify.reports.report import summary_line
from verify.result import FAIL, PASS, SKIP
from verify.verifier import BundleReport

_ICON = {PASS: "✅ pass", FAIL: "❌ fail", SKIP: "⏭️ skip"}


def _cell(text: str) -> str:
    """Table-safe: no pipes or newlines break the row."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip() or " "


def to_markdown(reports: list[BundleReport], exit_code: int) -> str:
    verdict = "PASS" if exit_code == 0 else "FAIL"
    lines = ["# verify-contract", "", f"**{verdict}**: {_cell(summary_line(reports))}", ""]
    for report in reports:
        failed = len(report.failed)
        lines += [
            f"## {report.contract}: {'all checks pass' if not failed else f'{failed} failing'}",
            "",
            f"`{report.path}`",
            "",
            "| check | status | detail |",
            "|---|---|---|",
        ]
        for check in report.checks:
            lines.append(f"| `{_cell(check.name)}` | {_ICON[check.status]} | {_cell(check.message)} |")
        lines.append("")
    return "\n".join(lines)


def write_markdown(path: Path, reports: list[BundleReport], exit_code: int) -> None:
    path.write_text(to_markdown(reports, exit_code), encoding="utf-8")
