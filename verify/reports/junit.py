"""JUnit XML: one testsuite per bundle, one testcase per check; failures carry their message."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from verify.result import FAIL, SKIP
from verify.verifier import BundleReport


def to_junit(reports: list[BundleReport]) -> ET.ElementTree:
    root = ET.Element("testsuites", name="verify-contract")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for report in reports:
        counts = {
            "tests": len(report.checks),
            "failures": sum(c.status == FAIL for c in report.checks),
            "skipped": sum(c.status == SKIP for c in report.checks),
        }
        seconds = sum(sum(c.details.get("seconds", {}).values()) for c in report.checks)
        attributes = {"name": f"{report.contract} ({report.path})", "errors": "0", "time": f"{seconds:.3f}"}
        suite = ET.SubElement(root, "testsuite", {**attributes, **{k: str(v) for k, v in counts.items()}})
        for check in report.checks:
            case = ET.SubElement(suite, "testcase", classname=report.contract, name=check.name)
            if check.status == FAIL:
                ET.SubElement(
                    case, "failure", message=check.message, type="ContractViolation"
                ).text = check.message
            elif check.status == SKIP:
                ET.SubElement(case, "skipped", message=check.message)
            elif check.message:
                ET.SubElement(case, "system-out").text = check.message
        totals = {k: totals[k] + counts[k] for k in totals}
    root.attrib.update({k: str(v) for k, v in totals.items()}, errors="0")
    return ET.ElementTree(root)


def write_junit(path: Path, reports: list[BundleReport]) -> None:
    tree = to_junit(reports)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
