"""Hypothesis strategies derived from a contract, to fuzz any artifact that claims to honour it.

Every size comes from the contract's data (its ``Dim`` and ``TensorSpec`` objects), never from
constants, so the same strategies fuzz a contract with another batch range, sequence range or
embedding width. hypothesis is a test extra (``pip install coreml-contract[test]``): this module
is imported by tests and by users, never by the toolkit's runtime code.

    from hypothesis import given
    from contracts import ENCODER_V1
    from contracts import strategies as cst
    from verify.backends.runners import OnnxRunner

    vocab = cst.Vocabulary.from_tokenizer_dir(bundle / "tokenizer")
    runner = OnnxRunner(ENCODER_V1, bundle / "encoder_v1.fp32.onnx")

    @given(cst.token_layouts(ENCODER_V1, max_sequence=32))
    def test_my_encoder(layout):
        outputs = runner.run(layout.arrays(ENCODER_V1, vocab))
        assert outputs["embedding"].shape[0] == layout.batch

Token batches are drawn as a :class:`TokenLayout` (batch, sequence, real length of every row and
a seed for the ids), which ``arrays(contract, vocab)`` turns into ``input_ids`` and
``attention_mask``: the vocabulary is read from a bundle at test time, while the layout can be
drawn, shrunk, printed and written as an ``@example`` without it. Large float inputs (64 × 1536)
are likewise drawn as a few structural choices plus a numpy seed, not element by element.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contracts.schema import Contract, Dim, TensorSpec

try:
    from hypothesis import strategies as st
except ImportError as exc:  # pragma: no cover - hypothesis is a test extra
    raise ImportError(
        "contracts.strategies needs hypothesis (a test extra): pip install 'coreml-contract[test]'"
    ) from exc

__all__ = [
    "FLOAT_KINDS",
    "HARD_TEXTS",
    "TokenLayout",
    "Vocabulary",
    "batch_sizes",
    "contract_dim",
    "float_batches",
    "float_rows",
    "invalid_batch_sizes",
    "out_of_range_sizes",
    "sequence_lengths",
    "sizes",
    "text_batches",
    "texts",
    "token_layouts",
    "tokenize",
]

_SEED = st.integers(0, 2**32 - 1)


# --- sizes -------------------------------------------------------------------------------------


def contract_dim(contract: Contract, name: str) -> Dim:
    """The dimension called ``name`` in the contract's inputs (e.g. ``"batch"``, ``"sequence"``)."""
    for spec in contract.inputs:
        for dim in spec.shape:
            if dim.name == name:
                return dim
    raise KeyError(f"contract {contract.name} has no input dimension {name!r}")


def sizes(dim: Dim, max_size: int | None = None) -> st.SearchStrategy[int]:
    """Sizes the contract accepts for ``dim``: ``lower..upper``, optionally capped at ``max_size``
    (to keep a slow backend cheap). Shrinks towards ``lower``."""
    upper = dim.upper if max_size is None else max(dim.lower, min(dim.upper, max_size))
    return st.integers(dim.lower, upper)


def out_of_range_sizes(dim: Dim, span: int | None = None) -> st.SearchStrategy[int]:
    """Sizes the contract refuses for ``dim``: ``0..lower-1`` and ``upper+1..upper+span``.

    The edges (``lower - 1`` where it is ≥ 0, and ``upper + 1``) are drawn first and shrunk to,
    so a derandomized run with a handful of examples still tries them."""
    span = dim.upper if span is None else span
    edges = [dim.upper + 1] + ([dim.lower - 1] if dim.lower > 0 else [])
    options = [st.sampled_from(sorted(edges)), st.integers(dim.upper + 1, dim.upper + max(span, 1))]
    if dim.lower > 0:
        options.append(st.integers(0, dim.lower - 1))
    return st.one_of(*options)


def batch_sizes(contract: Contract, max_size: int | None = None) -> st.SearchStrategy[int]:
    """Batch sizes inside the contract's range (``contract.batch``)."""
    return sizes(contract.batch, max_size)


def invalid_batch_sizes(contract: Contract, span: int | None = None) -> st.SearchStrategy[int]:
    """Batch sizes outside the contract's range: 0 (when the lower bound is 1), upper + 1, more."""
    return out_of_range_sizes(contract.batch, span)


def sequence_lengths(
    contract: Contract, max_size: int | None = None, name: str = "sequence"
) -> st.SearchStrategy[int]:
    """Sequence lengths inside the contract's range."""
    return sizes(contract_dim(contract, name), max_size)


# --- token ids ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vocabulary:
    """What token batches need from a tokenizer: its size and the special ids."""

    size: int
    cls_id: int
    sep_id: int
    pad_id: int = 0

    @property
    def special_ids(self) -> frozenset[int]:
        return frozenset({self.cls_id, self.sep_id, self.pad_id})

    @classmethod
    def from_tokenizer_dir(cls, directory: Path | str) -> Vocabulary:
        """Read a Hugging Face tokenizer directory (a bundle's ``tokenizer/``): ``vocab.txt``
        (WordPiece, one token a line) or else ``tokenizer.json``, and ``special_tokens_map.json``."""
        directory = Path(directory)
        names = {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]"}
        special_map = directory / "special_tokens_map.json"
        if special_map.is_file():
            for key, value in json.loads(special_map.read_text(encoding="utf-8")).items():
                if key in names:
                    names[key] = value["content"] if isinstance(value, dict) else value
        if (directory / "vocab.txt").is_file():
            lines = (directory / "vocab.txt").read_text(encoding="utf-8").splitlines()
            ids = {token: i for i, token in reversed(list(enumerate(lines)))}
        else:
            ids = json.loads((directory / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
        try:
            cls_id, sep_id, pad_id = (ids[names[k]] for k in ("cls_token", "sep_token", "pad_token"))
        except KeyError as exc:
            raise ValueError(f"{directory}: special token {exc} is not in the vocabulary") from None
        return cls(size=max(ids.values()) + 1, cls_id=cls_id, sep_id=sep_id, pad_id=pad_id)


@dataclass(frozen=True)
class TokenLayout:
    """A batch of tokenized rows: row ``i`` is ``[CLS] body [SEP]`` over ``lengths[i]`` positions
    (just ``[CLS]`` when the length is 1), then padding up to ``sequence``, mask 1 on the real
    tokens and 0 on the padding. The body ids of row ``i`` come from ``seeds[i]``: anywhere in
    ``0..size-1`` except the special ids, which are replaced by the largest id (so the edge of the
    vocabulary is exercised). A row's ids depend only on its own length and seed."""

    lengths: tuple[int, ...]
    sequence: int
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not self.seeds:
            object.__setattr__(self, "seeds", tuple(range(len(self.lengths))))
        if len(self.seeds) != len(self.lengths):
            raise ValueError(f"{len(self.seeds)} seeds for {len(self.lengths)} rows")
        if any(not 1 <= n <= self.sequence for n in self.lengths):
            raise ValueError(f"row lengths {self.lengths} must lie in 1..{self.sequence}")

    @property
    def batch(self) -> int:
        return len(self.lengths)

    @classmethod
    def full(cls, batch: int, sequence: int, seed: int = 0) -> TokenLayout:
        """``batch`` rows with no padding at all."""
        return cls((sequence,) * batch, sequence, tuple(range(seed, seed + batch)))

    def padded(self, extra: int) -> TokenLayout:
        """The same rows with ``extra`` more padding positions (mask 0) at the end."""
        return TokenLayout(self.lengths, self.sequence + extra, self.seeds)

    def trimmed(self) -> TokenLayout:
        """The same rows padded only to the longest one."""
        return TokenLayout(self.lengths, max(self.lengths), self.seeds)

    def row(self, index: int) -> TokenLayout:
        """Row ``index`` alone, at the same padded sequence length."""
        return TokenLayout((self.lengths[index],), self.sequence, (self.seeds[index],))

    def arrays(
        self,
        contract: Contract,
        vocab: Vocabulary,
        ids_name: str = "input_ids",
        mask_name: str = "attention_mask",
    ) -> dict[str, np.ndarray]:
        """``{ids_name: ids, mask_name: mask}`` in the contract's dtypes."""
        ids = np.full((self.batch, self.sequence), vocab.pad_id, dtype=np.int64)
        mask = np.zeros((self.batch, self.sequence), dtype=np.int64)
        specials = list(vocab.special_ids)
        for i, (length, seed) in enumerate(zip(self.lengths, self.seeds, strict=True)):
            body = np.random.default_rng(seed).integers(0, vocab.size, max(length - 2, 0))
            body[np.isin(body, specials)] = vocab.size - 1
            ids[i, 0] = vocab.cls_id
            if length >= 2:
                ids[i, 1 : length - 1] = body
                ids[i, length - 1] = vocab.sep_id
            mask[i, :length] = 1
        return {
            ids_name: ids.astype(contract.input(ids_name).dtype),
            mask_name: mask.astype(contract.input(mask_name).dtype),
        }


@st.composite
def token_layouts(
    draw,
    contract: Contract,
    batch: int | st.SearchStrategy[int] | None = None,
    sequence: int | st.SearchStrategy[int] | None = None,
    max_batch: int | None = None,
    max_sequence: int | None = None,
    min_sequence: int | None = None,
) -> TokenLayout:
    """Token batches with realistic padding, inside the contract's batch and sequence ranges.

    ``batch``/``sequence`` fix a size or give a strategy; otherwise they are drawn from the
    contract (capped by ``max_batch``/``max_sequence``). Row lengths are drawn in
    ``min(2, sequence)..sequence``; half the time the longest row fills the sequence (what a
    tokenizer's ``padding=True`` gives), otherwise every row may be padded (``padding="max_length"``).
    """
    batch_n = _draw_size(draw, batch, batch_sizes(contract, max_batch))
    seq_dim = contract_dim(contract, "sequence")
    if min_sequence is not None:
        seq_dim = Dim(seq_dim.name, max(seq_dim.lower, min_sequence), seq_dim.upper)
    sequence_n = _draw_size(draw, sequence, sizes(seq_dim, max_sequence))
    shortest = min(2, sequence_n)
    lengths = draw(st.lists(st.integers(shortest, sequence_n), min_size=batch_n, max_size=batch_n))
    if draw(st.booleans()):
        longest = max(range(batch_n), key=lambda i: lengths[i])
        lengths[longest] = sequence_n
    seed = draw(_SEED)
    return TokenLayout(tuple(lengths), sequence_n, tuple(seed + i for i in range(batch_n)))


def _draw_size(draw, value: int | st.SearchStrategy[int] | None, default: st.SearchStrategy[int]) -> int:
    if value is None:
        return draw(default)
    if isinstance(value, int):
        return value
    return draw(value)


# --- texts -------------------------------------------------------------------------------------

#: Hand-picked hard cases: emoji (ZWJ sequences, flags, skin tones, keycaps), CJK, right-to-left
#: scripts and bidi controls, combining marks and zalgo, invisible and control characters.
HARD_TEXTS: tuple[str, ...] = (
    "",
    " ",
    "\t\n\r\u00a0\u2003\u3000",
    "👩\u200d👩\u200d👧\u200d👦 family",
    "🇫🇷🇯🇵🏳️\u200d🌈 flags",
    "👍🏽 1️⃣ ❤️",
    "漢字とカタカナのテキスト、中文句子。",
    "한국어 문장입니다",
    "مرحبا بالعالم، هذا نص عربي",
    "שלום עולם",
    "\u202eright-to-left override\u202c and \u200fmarks\u200e",
    "cafe\u0301 nai\u0308ve e\u0300\u0301\u0302\u0303",
    "Z\u0335\u0327a\u0337\u0301l\u0336\u0358g\u0334\u0350o\u0338",
    "zero\u200bwidth\u200cjoiners\u200d\ufeffBOM",
    "control \x00\x01\x07\x1b chars",
    "ﬁ ligature, Ⅻ numerals, ＦＵＬＬＷＩＤＴＨ",
    "ไทย हिन्दी ελληνικά русский",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙 𓀀",
)

_WHITESPACE = " \t\n\r\x0b\x0c\u00a0\u1680\u2000\u2002\u2003\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def texts(max_size: int = 200, huge: bool = True, huge_repeats: tuple[int, int] = (300, 3000)):
    """Texts to tokenize: the empty string, whitespace only, the hard cases above, arbitrary
    unicode (no surrogates), mixtures, and (``huge``) a piece repeated ``huge_repeats`` times,
    which tokenizes far past any sequence limit and must be truncated."""
    unicode_text = st.text(st.characters(codec="utf-8"), max_size=max_size)
    options = [
        st.just(""),
        st.text(st.sampled_from(_WHITESPACE), min_size=1, max_size=20),
        st.sampled_from(HARD_TEXTS),
        unicode_text,
        st.lists(st.one_of(st.sampled_from(HARD_TEXTS), unicode_text), min_size=2, max_size=4).map(" ".join),
    ]
    if huge:
        piece = st.one_of(st.sampled_from(HARD_TEXTS[3:]), st.text(min_size=1, max_size=12))
        options.append(st.builds(lambda text, n: (text + " ") * n, piece, st.integers(*huge_repeats)))
    return st.one_of(*options)


def text_batches(contract: Contract, max_batch: int | None = None, **text_options):
    """Lists of texts whose length is a batch size the contract accepts."""
    dim = contract.batch
    upper = dim.upper if max_batch is None else max(dim.lower, min(dim.upper, max_batch))
    return st.lists(texts(**text_options), min_size=dim.lower, max_size=upper)


def tokenize(
    tokenizer,
    batch: Sequence[str],
    contract: Contract,
    ids_name: str = "input_ids",
    mask_name: str = "attention_mask",
) -> dict[str, np.ndarray]:
    """Tokenize with a Hugging Face tokenizer as the app does: padded to the longest row,
    truncated to the contract's sequence upper bound, in the contract's dtypes."""
    upper = contract_dim(contract, "sequence").upper
    encoded = tokenizer(list(batch), padding=True, truncation=True, max_length=upper, return_tensors="np")
    return {
        ids_name: encoded["input_ids"].astype(contract.input(ids_name).dtype),
        mask_name: encoded["attention_mask"].astype(contract.input(mask_name).dtype),
    }


# --- float inputs (e.g. the 1536-d embedding) -----------------------------------------------------

#: ``unit``: L2 norm 1 (as the encoder produces); ``unnormalized``: norm drawn log-uniformly in
#: ``norms``; ``zeros``: all zero; ``nan`` / ``inf``: unit rows with some entries NaN / ±Inf.
FLOAT_KINDS = ("unit", "unnormalized", "zeros", "nan", "inf")

_SHAPES = ("gaussian", "sparse", "one_hot", "constant", "heavy_tailed")


def float_rows(
    batch: int,
    width: int,
    seed: int = 0,
    kind: str = "unit",
    shape: str = "gaussian",
    norm: float = 1.0,
    bad_rows: Sequence[int] = (),
) -> np.ndarray:
    """A deterministic float32 (batch, width) array; see :data:`FLOAT_KINDS`. ``shape`` picks the
    direction of each row before scaling: gaussian, sparse (a few entries), one-hot, constant,
    heavy-tailed. For ``nan``/``inf`` the rows in ``bad_rows`` (default: row 0) get 1 to 3 bad
    entries."""
    if kind not in FLOAT_KINDS:
        raise ValueError(f"kind {kind!r} not one of {FLOAT_KINDS}")
    rng = np.random.default_rng(seed)
    if kind == "zeros":
        return np.zeros((batch, width), np.float32)
    if shape == "gaussian":
        rows = rng.standard_normal((batch, width))
    elif shape == "sparse":
        rows = np.zeros((batch, width))
        for row in rows:
            count = min(width, int(rng.integers(1, 9)))
            row[rng.choice(width, size=count, replace=False)] = rng.normal(size=count)
    elif shape == "one_hot":
        rows = np.zeros((batch, width))
        rows[np.arange(batch), rng.integers(0, width, batch)] = rng.choice([-1.0, 1.0], batch)
    elif shape == "constant":
        rows = np.ones((batch, width)) * rng.choice([-1.0, 1.0], (batch, 1))
    elif shape == "heavy_tailed":
        rows = rng.standard_cauchy((batch, width))
    else:
        raise ValueError(f"shape {shape!r} not one of {_SHAPES}")
    rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-300)
    if kind == "unnormalized":
        rows *= norm
    rows = rows.astype(np.float32)
    if kind in ("nan", "inf"):
        for r in bad_rows or (0,):
            where = rng.choice(width, size=int(rng.integers(1, 4)), replace=False)
            rows[r, where] = np.nan if kind == "nan" else rng.choice([-np.inf, np.inf], where.size)
    return rows


@st.composite
def float_batches(
    draw,
    contract: Contract,
    kind: str | st.SearchStrategy[str] = "unit",
    batch: int | st.SearchStrategy[int] | None = None,
    max_batch: int | None = None,
    norms: tuple[float, float] = (1e-3, 1e3),
    input_name: str | None = None,
) -> dict[str, np.ndarray]:
    """``{name: array}`` for the contract's float input (the only one, or ``input_name``): batch
    inside the contract's range, every other dimension the contract's fixed size, rows of
    ``kind`` (see :data:`FLOAT_KINDS`). For ``unnormalized`` the norm is drawn log-uniformly in
    ``norms`` (one per batch)."""
    spec = _float_input(contract, input_name)
    if len(spec.shape) != 2 or not spec.shape[1].is_fixed:
        raise ValueError(f"{spec.name}: float_batches wants a (batch, fixed width) input")
    kind_n = kind if isinstance(kind, str) else draw(kind)
    batch_n = _draw_size(draw, batch, sizes(spec.shape[0], max_batch))
    norm = 10 ** draw(st.floats(np.log10(norms[0]), np.log10(norms[1]))) if kind_n == "unnormalized" else 1.0
    bad_rows: list[int] = []
    if kind_n in ("nan", "inf"):
        bad_rows = draw(st.lists(st.integers(0, batch_n - 1), min_size=1, max_size=3, unique=True))
    rows = float_rows(
        batch_n,
        spec.shape[1].lower,
        seed=draw(_SEED),
        kind=kind_n,
        shape=draw(st.sampled_from(_SHAPES)),
        norm=norm,
        bad_rows=bad_rows,
    )
    return {spec.name: rows.astype(spec.dtype)}


def _float_input(contract: Contract, name: str | None) -> TensorSpec:
    if name is not None:
        return contract.input(name)
    floats = [s for s in contract.inputs if np.issubdtype(np.dtype(s.dtype), np.floating)]
    if len(floats) != 1:
        raise ValueError(f"contract {contract.name} has {len(floats)} float inputs; name one")
    return floats[0]
