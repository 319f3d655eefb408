"""Read a corpus of texts as a stream: ``.txt`` (one text a line), ``.jsonl`` (a field of each
object) or ``.parquet`` (a column, through pyarrow: ``pip install coreml-contract[parquet]``).
Nothing is read whole: texts come in chunks of bounded size."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

FORMATS = (".txt", ".jsonl", ".parquet")


class CorpusError(ValueError):
    """A corpus that cannot be read: missing, unknown format, a bad line or a missing column."""


def count_texts(path: Path, column: str = "text") -> int | None:
    """How many texts ``path`` holds, for the progress bar: lines counted in 1 MiB blocks, or the
    Parquet row count from its footer. None when unknown."""
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        except Exception:  # noqa: BLE001 - an estimate only; read_texts reports the real error
            return None
    lines, last = 0, b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


def read_texts(path: Path, column: str = "text") -> Iterator[str]:
    """Every text of ``path`` in file order; empty lines of a .txt are skipped."""
    path = Path(path)
    if path.suffix not in FORMATS:
        raise CorpusError(f"{path}: unknown corpus format {path.suffix!r} (use {', '.join(FORMATS)})")
    if not path.is_file():
        raise CorpusError(f"{path}: no such corpus file")
    if path.suffix == ".parquet":
        yield from _parquet(path, column)
        return
    with open(path, encoding="utf-8", errors="strict") as handle:
        yield from line_texts(handle, path.suffix, column, path)


def line_texts(handle: Iterable[str], suffix: str, column: str, source: Path | str) -> Iterator[str]:
    """The texts of a .txt or .jsonl stream opened in text mode (universal newlines): blank lines
    are skipped. Both engines read lines through this one function."""
    try:
        for number, line in enumerate(handle, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            yield line if suffix == ".txt" else _jsonl_text(line, column, source, number)
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def _jsonl_text(line: str, column: str, path: Path | str, number: int) -> str:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise CorpusError(f"{path}:{number}: not a JSON object ({exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get(column), str):
        raise CorpusError(f"{path}:{number}: no string field {column!r}")
    return record[column]


def _parquet(path: Path, column: str) -> Iterator[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CorpusError(
            f"{path}: reading Parquet needs pyarrow (pip install 'coreml-contract[parquet]')"
        ) from None
    try:
        source = pq.ParquetFile(path)
        if column not in source.schema_arrow.names:
            raise CorpusError(
                f"{path}: no column {column!r} (columns: {', '.join(source.schema_arrow.names)})"
            )
        for batch in source.iter_batches(batch_size=4096, columns=[column]):
            yield from column_texts(batch.column(0).to_pylist())
    except CorpusError:
        raise
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        raise CorpusError(f"{path}: unreadable Parquet file ({type(exc).__name__}: {exc})") from None


def column_texts(values: Iterable[object]) -> list[str]:
    """A Parquet column's texts: nulls, non-strings and blank strings are skipped."""
    return [value for value in values if isinstance(value, str) and value.strip()]


def chunked(texts: Iterator[str], size: int) -> Iterator[list[str]]:
    iterator = iter(texts)
    while chunk := list(islice(iterator, size)):
        yield chunk
