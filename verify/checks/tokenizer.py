"""The bundle's tokenizer: its files are the published ones, and it reproduces the golden inputs
from the golden texts, exactly (the goldens and the app both start from text)."""

from __future__ import annotations

import numpy as np

from contracts.hashing import sha256_file
from golden.store import Golden
from verify.bundle import Bundle
from verify.result import CheckResult, verdict

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
