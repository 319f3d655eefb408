"""verify-contract's report files: JSON, JUnit XML, Markdown and the HTML report with histograms,
all from one verification of the real default bundles; stale-golden detection."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest

from tests.helpers import rehash_manifest, run_verify, verify_fails_with

pytestmark = pytest.mark.slow


def _checks(files) -> list[dict]:
    return [c for b in json.loads(files["json"].read_text())["bundles"] for c in b["checks"]]


def test_default_bundles_pass(reports):
    code, out, files = reports
    assert code == 0, out
    data = json.loads(files["json"].read_text())
    names = {c["name"]: c for c in _checks(files)}
    assert names["onnx-fp32/numerics[embedding]"]["status"] == "pass"
    assert names["encoder-pinning"]["status"] == "pass"
    assert names["golden-freshness"]["status"] == "pass"
    assert data["passed"] is True and "PASS" in out


def test_junit_parses_and_counts_match_the_table(reports):
    code, out, files = reports
    root = ET.parse(files["junit"]).getroot()
    checks = _checks(files)
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == [c["name"] for c in checks]
    assert int(root.get("tests")) == len(checks)
    assert int(root.get("failures")) == sum(c["status"] == "fail" for c in checks) == 0
    assert (
        int(root.get("skipped"))
        == sum(c["status"] == "skip" for c in checks)
        == len(root.findall(".//skipped"))
    )
    passed, failed, skipped = map(int, re.search(r"(\d+) passed, (\d+) failed, (\d+) skipped", out).groups())
    assert (passed + failed + skipped, failed, skipped) == (len(cases), 0, int(root.get("skipped")))


def test_junit_failure_carries_the_message(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    (bundle / "personality-tokens.json").write_text(json.dumps(["x"] * 325))
    rehash_manifest(bundle)
    junit = tmp_path / "r.xml"
    verify_fails_with(capsys, tmp_path, bundle, "coreml-fp32/metadata", "--no-numerics", "--junit", junit)
    root = ET.parse(junit).getroot()
    failures = {case.get("name"): case.find("failure") for case in root.iter("testcase")}
    assert failures["coreml-fp32/metadata"] is not None
    assert "tokens" in failures["coreml-fp32/metadata"].get("message")
    assert int(root.get("failures")) == sum(f is not None for f in failures.values()) > 0


def test_markdown_is_a_valid_table_per_bundle(reports):
    from markdown_it import MarkdownIt

    _, _, files = reports
    text = files["markdown"].read_text()
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    tables = [t for t in tokens if t.type == "table_open"]
    rows = sum(t.type == "tr_open" for t in tokens)
    checks = _checks(files)
    assert len(tables) == 3  # the two bundles and the text_to_personality pipeline
    assert rows == len(checks) + len(tables)  # one header row per table
    assert text.startswith("# verify-contract\n\n**PASS**")


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[bytes] = []

    def handle_starttag(self, tag, attrs):
        source = dict(attrs).get("src", "")
        if tag == "img" and source.startswith("data:image/png;base64,"):
            self.images.append(base64.b64decode(source.split(",", 1)[1]))


def test_html_report_opens_with_a_histogram_per_numerics_check(reports):
    _, _, files = reports
    parser = _Images()
    parser.feed(files["html"].read_text())
    numerics = [c for c in _checks(files) if "histogram" in c["details"]]
    from contracts import PIPELINES, REGISTRY

    expected = sum(
        len(c.outputs) * len(c.artifacts) + len(c.outputs) * bool(c.training) for c in REGISTRY.values()
    )
    expected += sum(len(p.combinations) for p in PIPELINES.values())
    # 7 encoder artifacts (6 + enumerated) x 2 outputs, 6 + 1 updatable x logits, 6 pipelines x logits
    assert len(numerics) == expected == 27
    assert len(parser.images) == len(numerics)
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000 for png in parser.images)
    histogram = numerics[0]["details"]["histogram"]
    assert sum(histogram["counts"]) + histogram["zeros"] == histogram["total"] > 0


def test_stale_golden_names_the_regeneration(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("encoder_v1")
    info_path = bundle / "golden" / "golden.json"
    info = json.loads(info_path.read_text())
    info["reference_code_sha256"] = "f" * 64  # goldens from other reference code than the manifest
    info_path.write_text(json.dumps(info))
    rehash_manifest(bundle)
    verify_fails_with(capsys, tmp_path, bundle, "golden", "--no-numerics")
    message = next(c["message"] for c in _checks({"json": tmp_path / "report.json"}) if c["name"] == "golden")
    assert "stale goldens" in message and "reference_code_sha256" in message
    assert f"build-contract {bundle.parent} --model encoder_v1 --seed 0" in message


def test_bundle_from_other_reference_code_is_not_fresh(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    manifest_path = bundle / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["reference_code_sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    failures = verify_fails_with(capsys, tmp_path, bundle, "golden-freshness", "--no-numerics")
    assert "golden" in failures  # the goldens no longer agree with the manifest either
    code, out, _ = run_verify(capsys, bundle, "--no-numerics")
    assert "regenerate with" in out.replace("\n", " ")


def test_every_declared_pipeline_is_reported_and_passes(reports):
    """With both bundles, every same-precision combination of each format runs end to end."""
    from contracts import PIPELINES

    code, _, files = reports
    checks = {c["name"]: c for c in _checks(files)}
    assert code == 0
    for artifacts in PIPELINES["text_to_personality"].combinations:
        check = checks[f"pipeline/{'+'.join(artifacts)}[logits]"]
        assert check["status"] == "pass"
        assert set(check["details"]["bounds"]) >= {"flip_rate", "top10_overlap", "sigmoid_max_abs"}
        assert set(check["details"]["per_batch"]) == {"1", "7", "64"}
    assert checks["pipeline/reference"]["status"] == "pass"


# --------------------------------------------------------------------------------------------
# SNR and PSNR (issue 15, item 3)
# --------------------------------------------------------------------------------------------


def test_snr_and_psnr_agree_with_coremltools():
    """The same definitions as coremltools' compute_snr_and_psnr (on flattened values, where its
    eps terms are negligible)."""
    import numpy as np
    from coremltools.models.ml_program.experimental.debugging_utils import compute_snr_and_psnr

    from verify.compare import METRICS

    rng = np.random.default_rng(3)
    expected = rng.standard_normal((16, 64))
    for scale in (1e-1, 1e-2, 1e-3):
        actual = expected + scale * rng.standard_normal(expected.shape)
        snr, psnr = compute_snr_and_psnr(actual.ravel(), expected.ravel())
        assert METRICS["snr_db"].compute(actual, expected) == pytest.approx(snr, abs=0.01)
        assert METRICS["psnr_db"].compute(actual, expected) == pytest.approx(psnr, abs=0.01)


def test_a_degraded_output_falls_below_the_peer_gates():
    import numpy as np

    from contracts import Bound
    from verify.checks.numerics import judge
    from verify.compare import PSNR_PEER_GATES

    expected = np.random.default_rng(4).standard_normal((8, 32)).astype(np.float32)
    bounds = (Bound("max_abs", 1.0),)
    clean = judge("x/numerics[y]", {1: expected.copy()}, expected, bounds)
    noisy = judge("x/numerics[y]", {1: expected + 0.1 * expected.std()}, expected, bounds)
    assert clean.details["psnr_db"] > 250 and all(clean.details["peer_gates"].values())
    assert noisy.details["psnr_db"] < 35 and not any(noisy.details["peer_gates"].values())
    assert len(noisy.details["peer_gates"]) == len(PSNR_PEER_GATES) and "PSNR" in noisy.message


def test_every_numerics_check_reports_psnr_and_the_table_shows_it(reports):
    from verify.reports.tolerance_table import psnr_rows

    _, _, files = reports
    report = json.loads(files["json"].read_text())
    numerics = [c for b in report["bundles"] for c in b["checks"] if "/numerics[" in c["name"]]
    assert numerics and all(c["details"]["psnr_db"] is not None for c in numerics)
    fp32 = [c["details"]["psnr_db"] for c in numerics if "-fp32/" in c["name"]]
    assert min(fp32) > 60, fp32  # fp32 artifacts clear even the strictest peer gate
    assert len(psnr_rows(report)) == 2 + len(numerics)
