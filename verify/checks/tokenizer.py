"""The bundle's tokenizer: its files are the published ones, and it reproduces the golden inputs
from the golden texts, exactly (the goldens and the app both start from text)."""

from __future__ import annotations

import numpy as np

from contracts.hashing import sha256_file
from golden.store import Golden
from verify.bundle import Bundle, read_json
from verify.result import CheckResult, failed, verdict

NAME = "tokenizer"


def check_tokenizer(bundle: Bundle, golden: Golden | None) -> CheckResult:
    spec = bundle.registered.tokenizer
    assert spec is not None
    problems = []
    for relative, pinned in spec.files:
        try:
            path = bundle.path(relative)
            actual = sha256_file(path) if path.is_file() else "missing"
        except (ValueError, OSError) as exc:
            actual = str(exc)
        if actual != pinned:
            problems.append(
                f"{relative} is not the published file (sha256 {actual[:16]}, pinned {pinned[:16]})"
            )
    if golden is None:
        return verdict(NAME, problems or ["no usable goldens to re-tokenize (see the golden check)"])
    try:
        mismatched = _retokenize(bundle, golden)
    except Exception as exc:  # tokenizers raises its own Exception types on a corrupt file
        problems.append(f"{spec.load} cannot be loaded: {type(exc).__name__}: {str(exc)[:200]}")
    else:
        if mismatched:
            shown = ", ".join(str(row) for row in mismatched[:5])
            problems.append(
                f"re-tokenizing the golden texts gives other input_ids or attention_mask in "
                f"{len(mismatched)} of {golden.rows} rows (first: {shown})"
            )
    return verdict(
        NAME, problems, f"{len(spec.files)} files pinned; {golden.rows} golden texts re-tokenized exactly"
    )


def _retokenize(bundle: Bundle, golden: Golden) -> list[int]:
    """Rows whose golden input_ids / attention_mask the bundle's tokenizer does not reproduce."""
    from tokenizers import Tokenizer

    spec = bundle.registered.tokenizer_spec
    tokenizer = Tokenizer.from_file(str(bundle.path(spec.load)))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=spec.max_length)
    texts = golden.info.get("texts")
    ids, mask = golden.tensors["input_ids"], golden.tensors["attention_mask"]
    if not isinstance(texts, list) or len(texts) != len(ids):
        return list(range(len(ids)))
    mismatched = []
    for row, encoding in enumerate(tokenizer.encode_batch([str(t) for t in texts])):
        width = len(encoding.ids)
        expected = np.zeros(ids.shape[1], dtype=np.int64)
        if width > ids.shape[1]:
            mismatched.append(row)
            continue
        expected[:width] = encoding.ids
        present = (np.arange(ids.shape[1]) < width).astype(mask.dtype)
        if not (np.array_equal(ids[row], expected) and np.array_equal(mask[row], present)):
            mismatched.append(row)
    return mismatched


CONFORMANCE = "tokenizer-conformance"
#: What a conformance fixture must cover to be worth an app team's test (issue 16).
MIN_TEXTS, MIN_CATEGORIES = 300, 15


def check_tokenizer_conformance(bundle: Bundle) -> CheckResult:
    """The bundle's tokenizer reproduces its conformance fixture: every text's ids, tokens,
    attention mask and truncation, exactly. The fixture is what an app's tokenizer is tested
    against, so a fixture the tokenizer disagrees with would pass a wrong app."""
    from verify.tokenization import load_tokenizer

    spec = bundle.registered.tokenizer_spec
    relative = spec.conformance or ""
    try:
        fixture = read_json(bundle.path(relative))
        cases = fixture["cases"]
        if not isinstance(cases, list) or not all(isinstance(c, dict) for c in cases):
            raise ValueError("cases is not a list of objects")
        tokenizer = load_tokenizer(bundle.root)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        return failed(CONFORMANCE, f"{relative}: {type(exc).__name__}: {exc}")
    except Exception as exc:  # tokenizers raises its own Exception types on a corrupt file
        return failed(CONFORMANCE, f"{spec.load} cannot be loaded: {type(exc).__name__}: {str(exc)[:200]}")
    problems = []
    categories = {str(c.get("category")) for c in cases}
    if len(cases) < MIN_TEXTS or len(categories) < MIN_CATEGORIES:
        problems.append(
            f"{len(cases)} texts in {len(categories)} categories (at least {MIN_TEXTS} in {MIN_CATEGORIES})"
        )
    tokenizer_sha = sha256_file(bundle.path(spec.load))
    if fixture.get("tokenizer_sha256") != tokenizer_sha:
        problems.append(f"made from another {spec.load} (sha256 {str(fixture.get('tokenizer_sha256'))[:16]})")
    if fixture.get("settings", {}).get("max_length") != spec.max_length:
        problems.append(
            f"max_length {fixture.get('settings', {}).get('max_length')} != contract {spec.max_length}"
        )
    mismatched: dict[str, list[str]] = {}
    encodings = tokenizer.encode_batch([str(c.get("text", "")) for c in cases])
    for case, encoding in zip(cases, encodings, strict=True):
        made = {
            "input_ids": encoding.ids,
            "tokens": encoding.tokens,
            "attention_mask": encoding.attention_mask,
            "truncated": bool(encoding.overflowing),
        }
        differ = [field for field, value in made.items() if case.get(field) != value]
        if differ:
            mismatched.setdefault(str(case.get("category")), []).append(
                f"{case.get('text')!r} ({', '.join(differ)})"
            )
    if mismatched:
        count = sum(len(v) for v in mismatched.values())
        first_category, texts = next(iter(mismatched.items()))
        problems.append(
            f"the tokenizer differs from the fixture on {count} of {len(cases)} texts in "
            f"{len(mismatched)} categories ({', '.join(mismatched)}); first: [{first_category}] {texts[0]}"
        )
    cross = fixture.get("cross_check", {})
    known = len(cross.get("expected_divergences", []))
    return verdict(
        CONFORMANCE,
        problems,
        f"{len(cases)} texts in {len(categories)} categories reproduced exactly; "
        f"{known} known divergences from {cross.get('implementation', '?')}",
        mismatched_categories=sorted(mismatched),
        texts=len(cases),
    )
