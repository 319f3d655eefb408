"""An encoder bundle's own tokenizer, set up as the reference tokenizes, and the sorted, padded
batches the verifier's corpus audit and ``inference.encode`` feed the encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from contracts import ENCODER_V1

TOKENIZER_FILE = Path("tokenizer") / "tokenizer.json"
#: The contract's batch and sequence ranges (1..64, 1..256).
BATCH, SEQUENCE = ENCODER_V1.inputs[0].shape
DEFAULT_BATCH = BATCH.upper


def load_tokenizer(bundle: Path):
    """The bundle's tokenizer, truncating to the contract's maximum sequence length, never padding.

    The shipped tokenizer.json carries all-MiniLM-L6-v2's own settings (truncation and fixed
    padding at 128); the reference tokenizes with ``truncation=True, max_length=256``.
    """
    from tokenizers import Tokenizer

    from verify.bundle import inside

    path = inside(Path(bundle), TOKENIZER_FILE.as_posix())  # refuses a FIFO or a path out
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not an encoder bundle (no tokenizer)")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=SEQUENCE.upper)
    return tokenizer


#: (rows of the batch in input order, model inputs)
TokenBatch = tuple[np.ndarray, dict[str, np.ndarray]]


def token_ids(tokenizer, texts: list[str]) -> list[list[int]]:
    return [encoding.ids for encoding in tokenizer.encode_batch(list(texts))]


def token_batches(tokenizer, texts: list[str], batch_size: int = DEFAULT_BATCH) -> list[TokenBatch]:
    """Tokenize ``texts``; batches of rows sorted by token count, each padded to its own longest."""
    if not BATCH.accepts(batch_size):
        raise ValueError(f"batch_size {batch_size} outside the contract range {BATCH.lower}..{BATCH.upper}")
    ids = token_ids(tokenizer, texts)
    lengths = np.array([len(row) for row in ids], dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    batches = []
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = int(lengths[rows].max())
        input_ids = np.zeros((len(rows), width), dtype=np.int32)
        mask = np.zeros((len(rows), width), dtype=np.int32)
        for i, row in enumerate(rows):
            input_ids[i, : lengths[row]] = ids[row]
            mask[i, : lengths[row]] = 1
        batches.append((rows, {"input_ids": input_ids, "attention_mask": mask}))
    return batches
