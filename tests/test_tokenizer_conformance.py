"""Issue 16, item 1: the tokenizer conformance fixture every encoder bundle ships, the check that
the bundle's tokenizer reproduces it, and the cross-check against a second implementation."""

from __future__ import annotations

import json
import unicodedata

import pytest

from contracts import ENCODER_V1
from golden.tokenizer_conformance import DivergenceError, new_divergences, write_fixture
from golden.tokenizer_texts import categories
from tests.helpers import rehash_manifest, run_verify
from verify.bundle import open_bundle
from verify.checks.tokenizer import MIN_CATEGORIES, MIN_TEXTS, check_tokenizer_conformance
from verify.selftest.mutants import edit_tokenizer, rename_vocabulary_entry, set_normalizer

FIXTURE = ENCODER_V1.tokenizer_spec.conformance or ""
UNK = 100  # [UNK] in all-MiniLM-L6-v2's vocabulary


@pytest.fixture(scope="module")
def fixture(bundles) -> dict:
    return json.loads((bundles / "encoder_v1" / FIXTURE).read_text(encoding="utf-8"))


def test_the_fixture_covers_what_app_tokenizers_get_wrong(fixture):
    cases = fixture["cases"]
    by_category: dict[str, list[dict]] = {}
    for case in cases:
        assert set(case) == {"category", "text", "input_ids", "tokens", "attention_mask", "truncated"}
        assert len(case["input_ids"]) == len(case["tokens"]) == len(case["attention_mask"])
        by_category.setdefault(case["category"], []).append(case)
    assert len(cases) >= MIN_TEXTS and len(by_category) >= MIN_CATEGORIES
    required = {"ascii", "accents_nfc", "accents_nfd", "combining_marks", "cjk", "kana", "thai", "arabic"}
    required |= {"hebrew", "devanagari", "emoji", "emoji_sequences", "control", "zero_width", "whitespace"}
    required |= {"urls_emails", "numbers", "mixed_case", "unknown", "truncated"}
    assert required <= set(by_category)
    assert all(c["truncated"] and len(c["input_ids"]) == 256 for c in by_category["truncated"])
    assert not any(
        c["truncated"] for name, group in by_category.items() if name != "truncated" for c in group
    )
    assert all(UNK in c["input_ids"] for c in by_category["unknown"])
    # BERT strips accents after NFD: the composed and decomposed spellings tokenize alike
    nfc = {unicodedata.normalize("NFC", c["text"]): c["input_ids"] for c in by_category["accents_nfc"]}
    assert all(
        nfc[unicodedata.normalize("NFC", c["text"])] == c["input_ids"] for c in by_category["accents_nfd"]
    )
    assert fixture["categories"] == {name: len(texts) for name, texts in categories().items()}


def test_the_python_and_rust_tokenizers_agree_on_every_text(fixture):
    """The cross-check against transformers' pure-Python BertTokenizer: no divergence found on
    these texts (the fixture lists them, like swift-transformers' expectedDivergences)."""
    cross = fixture["cross_check"]
    assert "BertTokenizer" in cross["implementation"] and cross["texts"] == len(fixture["cases"])
    assert cross["expected_divergences"] == []


def test_a_divergence_not_listed_as_known_is_new(fixture):
    diverging = {
        **fixture,
        "cross_check": {
            **fixture["cross_check"],
            "expected_divergences": [
                {"category": "cjk", "text": "我喜欢机器学习", "rust": [101, 102], "python": [101, 100, 102]}
            ],
        },
    }
    assert [d["text"] for d in new_divergences(diverging)] == ["我喜欢机器学习"]


def test_the_build_refuses_a_tokenizer_the_python_one_disagrees_with(bundles, tmp_path):
    """A tokenizer.json whose normalizer keeps case, beside a vocab.txt config that lower-cases:
    the two implementations part ways, and writing the fixture fails naming a text."""
    source = bundles / "encoder_v1" / "tokenizer"
    for path in source.iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    data = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    set_normalizer("lowercase", False)(data)
    (tmp_path / "tokenizer.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DivergenceError, match=r"new tokenizer divergence.*first: \["):
        write_fixture(tmp_path, tmp_path / "fixture.json", 256)
    assert not (tmp_path / "fixture.json").exists()


def test_the_shipped_tokenizer_reproduces_the_fixture(bundles):
    result = check_tokenizer_conformance(open_bundle(bundles / "encoder_v1"))
    assert result.status == "pass", result.message
    assert result.details["texts"] >= MIN_TEXTS and result.details["mismatched_categories"] == []


@pytest.mark.parametrize(
    "edit, categories_hit",
    [
        (rename_vocabulary_entry(), {"ascii"}),
        (set_normalizer("lowercase", False), {"mixed_case", "ascii"}),
        (set_normalizer("strip_accents", False), {"accents_nfc", "accents_nfd"}),
    ],
    ids=["vocabulary-entry", "lowercase", "strip-accents"],
)
def test_a_changed_tokenizer_fails_conformance(copy_bundle, capsys, tmp_path, edit, categories_hit):
    """One vocabulary entry renamed, or one normalizer option changed, with the fixture's
    tokenizer hash and the manifest re-stamped: the conformance check fails and names where."""
    bundle = copy_bundle("encoder_v1")
    edit_tokenizer(bundle, edit)
    rehash_manifest(bundle, contents=True)
    report = tmp_path / "r.json"
    code, out, _ = run_verify(capsys, bundle, "--no-numerics", "--json", report)
    assert code == 1, out[-2000:]
    checks = {c["name"]: c for c in json.loads(report.read_text())["bundles"][0]["checks"]}
    conformance = checks["tokenizer-conformance"]
    assert conformance["status"] == "fail" and "differs from the fixture" in conformance["message"]
    assert categories_hit <= set(conformance["details"]["mismatched_categories"]), conformance["details"]


def test_a_missing_fixture_fails_in_one_line(copy_bundle):
    bundle = copy_bundle("encoder_v1")
    (bundle / FIXTURE).unlink()
    result = check_tokenizer_conformance(open_bundle(bundle))
    assert result.status == "fail" and FIXTURE in result.message and "\n" not in result.message
