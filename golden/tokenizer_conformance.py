"""The tokenizer conformance fixture an encoder bundle ships (``golden/tokenizer-conformance.json``):
what the bundle's tokenizer makes of 300+ stressing texts, for an app's Swift tokenizer to match
byte for byte, as swift-transformers' own ``Tests/TokenizersTests`` do against Python.

Each text is also tokenized by a second, independent implementation, transformers' pure-Python
``BertTokenizer`` on the same vocabulary and settings; where the two disagree the fixture lists it
(``expected_divergences``, as swift-transformers' ``expectedDivergences``). A divergence not in
``KNOWN_DIVERGENCES`` fails the build: one of the two libraries changed how it tokenizes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contracts.hashing import sha256_file
from golden.tokenizer_texts import categories

FIXTURE_FORMAT = 1
#: Texts the two implementations tokenize differently, by category, measured with tokenizers
#: 0.22 and transformers 5 (see docs/TOKENIZER.md).
KNOWN_DIVERGENCES: dict[str, tuple[str, ...]] = {}


class DivergenceError(ValueError):
    """The Rust and Python tokenizers disagree on a text they used to agree on."""


def conformance_fixture(tokenizer_dir: Path, max_length: int) -> dict[str, Any]:
    """Tokenize every text with the bundle's tokenizer (``tokenizer.json``, Rust) and cross-check
    it with ``BertTokenizer`` (Python) built from ``vocab.txt`` and ``tokenizer_config.json``."""
    import tokenizers
    import transformers
    from tokenizers import Tokenizer

    rust = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    rust.no_padding()
    rust.enable_truncation(max_length=max_length)
    python = _python_tokenizer(tokenizer_dir)
    cases, divergences = [], []
    for category, texts in categories().items():
        for text in texts:
            encoding = rust.encode(text)
            cases.append(
                {
                    "category": category,
                    "text": text,
                    "input_ids": encoding.ids,
                    "tokens": encoding.tokens,
                    "attention_mask": encoding.attention_mask,
                    "truncated": bool(encoding.overflowing),
                }
            )
            other = python(text, truncation=True, max_length=max_length)["input_ids"]
            if list(other) != list(encoding.ids):
                divergences.append(
                    {"category": category, "text": text, "rust": encoding.ids, "python": list(other)}
                )
    settings = json.loads((tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    return {
        "format": FIXTURE_FORMAT,
        "tokenizer": "tokenizer/tokenizer.json",
        "tokenizer_sha256": sha256_file(tokenizer_dir / "tokenizer.json"),
        "implementation": f"huggingface tokenizers {tokenizers.__version__} (Rust)",
        "settings": {
            "max_length": max_length,
            "truncation": "longest_first, from the end",
            "padding": "none",
            "add_special_tokens": True,
            "normalizer": settings.get("normalizer"),
            "pre_tokenizer": settings.get("pre_tokenizer"),
        },
        "cross_check": {
            "implementation": f"transformers {transformers.__version__} BertTokenizer (pure Python)",
            "texts": len(cases),
            "expected_divergences": divergences,
        },
        "categories": {name: len(texts) for name, texts in categories().items()},
        "cases": cases,
    }


def _python_tokenizer(tokenizer_dir: Path):
    from transformers import BertTokenizer

    config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    return BertTokenizer(
        str(tokenizer_dir / "vocab.txt"),
        do_lower_case=config.get("do_lower_case", True),
        strip_accents=config.get("strip_accents"),
        tokenize_chinese_chars=config.get("tokenize_chinese_chars", True),
    )


def new_divergences(fixture: dict[str, Any]) -> list[dict[str, Any]]:
    """Divergences the fixture records that ``KNOWN_DIVERGENCES`` does not list."""
    return [
        d
        for d in fixture["cross_check"]["expected_divergences"]
        if d["text"] not in KNOWN_DIVERGENCES.get(d["category"], ())
    ]


def write_fixture(tokenizer_dir: Path, target: Path, max_length: int) -> dict[str, Any]:
    """Write the fixture; a divergence between the implementations that is not known fails."""
    fixture = conformance_fixture(tokenizer_dir, max_length)
    unknown = new_divergences(fixture)
    if unknown:
        first = unknown[0]
        raise DivergenceError(
            f"{len(unknown)} new tokenizer divergence(s) between {fixture['implementation']} and "
            f"{fixture['cross_check']['implementation']}; first: [{first['category']}] {first['text']!r}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(fixture, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return fixture
