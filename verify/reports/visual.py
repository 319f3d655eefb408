"""A self-contained HTML report: per artifact and output, a histogram of |error| against the
goldens, the tightest bound that would pass (the measured value) and the share of budget used;
per explained artifact, each op's SNR against the fp32 program (the error-growth plot)."""

from __future__ import annotations

import base64
import html
import io
from itertools import pairwise
from pathlib import Path

from verify.compare import METRICS
from verify.reports.report import summary_line
from verify.result import FAIL, PASS, SKIP, CheckResult
from verify.verifier import BundleReport

_COLOUR = {PASS: "#1a7f37", FAIL: "#cf222e", SKIP: "#9a6700"}
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
.figure{display:inline-block;vertical-align:top;margin:0 1.5em 1.5em 0}
"""


def histogram_png(check: CheckResult) -> bytes:
    """The error histogram of one numerics check, with the max_abs limit and the worst error."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    histogram = check.details["histogram"]
    edges, counts = histogram["log10_edges"], histogram["counts"]
    figure = Figure(figsize=(5.2, 2.8), dpi=90)
    axes = figure.add_subplot()
    axes.bar(edges[:-1], counts, width=[b - a for a, b in pairwise(edges)], align="edge", color="#4c72b0")
    bounds = check.details.get("bounds", {})
    stats = check.details.get("per_batch", {})
    worst = max((s["max_abs"] for s in stats.values()), default=None)
    if worst:
        axes.axvline(_log10(worst), color="#dd8452", linestyle="--", label=f"worst {worst:.2g}")
    if "max_abs" in bounds:
        limit = bounds["max_abs"]["limit"]
        axes.axvline(_log10(limit), color="#c44e52", label=f"limit {limit:g}")
    axes.set_xlabel("log10 |artifact − golden|")
    axes.set_ylabel("elements")
    axes.set_yscale("log")
    zeros = histogram["zeros"]
    axes.set_title(f"{check.name}  ({zeros} of {histogram['total']} exact)", fontsize=8)
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


_EXACT_SHOWN = 90.0


def error_growth_png(check: CheckResult) -> bytes:
    """An explained artifact: each compared op's SNR against the fp32 program, in program order,
    with the op floor and the failure source (or worst op) marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    details = check.details
    # -inf (NaN/Inf) drawn at the bottom, exact ops (200 dB) at the top
    curve = [(index, min(max(snr, -20.0), _EXACT_SHOWN)) for index, snr in details["curve"]]
    figure = Figure(figsize=(10.4, 3.0), dpi=90)
    axes = figure.add_subplot()
    axes.plot(
        [i for i, _ in curve], [v for _, v in curve], color="#4c72b0", linewidth=1, marker=".", markersize=3
    )
    axes.axhline(details["floor_db"], color="#c44e52", label=f"op floor {details['floor_db']:g} dB")
    for key, colour, label in (
        ("first_nonfinite", "#8172b3", "first NaN/Inf"),
        ("source", "#cf222e", "failure source"),
        ("worst", "#dd8452", "worst op"),
    ):
        op = details.get(key)
        if op is not None:
            axes.axvline(
                op["index"], color=colour, linestyle="--", label=f"{label}: {op['op_type']} {op['module']}"
            )
            if key != "worst":
                break
    axes.set_xlabel(f"op (program order of {details['reference']})")
    axes.set_ylabel(f"SNR vs fp32, dB (top: ≥ {_EXACT_SHOWN:g})")
    axes.set_ylim(-22, _EXACT_SHOWN + 5)
    axes.set_title(f"{check.name}: error growth, golden rows {details['rows']}", fontsize=8)
    axes.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _log10(value: float) -> float:
    import math

    return math.log10(max(value, 1e-10))


def _bounds_table(check: CheckResult) -> str:
    rows = [
        "<tr><th>metric</th><th>measured = tightest passing bound</th><th>limit</th><th>budget used</th></tr>"
    ]
    for metric, bound in check.details.get("bounds", {}).items():
        rows.append(
            f"<tr><td>{metric}</td><td>{METRICS[metric].direction} {bound['value']:.4g}</td>"
            f"<td>{bound['limit']:g}</td><td>{bound['budget_used']:.0%}</td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


def to_html(reports: list[BundleReport], exit_code: int) -> str:
    verdict = "PASS" if exit_code == 0 else "FAIL"
    colour = _COLOUR[PASS if exit_code == 0 else FAIL]
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>verify-contract {verdict}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>verify-contract: <span style='color:{colour}'>{verdict}</span>"
        f"</h1><p>{html.escape(summary_line(reports))}</p>",
    ]
    for report in reports:
        parts.append(
            f"<h2>{html.escape(report.contract)}</h2><p><code>{html.escape(str(report.path))}</code></p>"
        )
        for check in report.checks:
            if "curve" in check.details:
                png = base64.b64encode(error_growth_png(check)).decode()
                parts.append(
                    f"<div class='figure'><img alt='{html.escape(check.name)} error growth' "
                    f"src='data:image/png;base64,{png}'><p>{html.escape(check.message)}</p></div>"
                )
        for check in report.checks:
            if "histogram" not in check.details:
                continue
            png = base64.b64encode(histogram_png(check)).decode()
            parts.append(
                f"<div class='figure'><img alt='{html.escape(check.name)} error histogram' "
                f"src='data:image/png;base64,{png}'>{_bounds_table(check)}</div>"
            )
        parts.append("<table><tr><th>check</th><th>status</th><th>detail</th></tr>")
        for check in report.checks:
            parts.append(
                f"<tr><td>{html.escape(check.name)}</td>"
                f"<td style='color:{_COLOUR[check.status]}'>{check.status}</td>"
                f"<td>{html.escape(check.message)}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(path: Path, reports: list[BundleReport], exit_code: int) -> None:
    path.write_text(to_html(reports, exit_code), encoding="utf-8")
