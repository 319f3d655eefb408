"""A realistic audit corpus from text shipped in installed packages, never from the golden corpus.

    python -m benchmarks.corpus build/audit-corpus.txt [--count 12000]

Sentences come from the long descriptions in ``*.dist-info/METADATA`` (READMEs of the installed
packages: prose, code, URLs, lists, several languages) and from Python docstrings under
site-packages: real, varied English of every length, deterministic for a given set of installed
versions (constraints.txt pins them). One text a line, de-duplicated, golden texts excluded.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

MIN_CHARS, MAX_CHARS = 12, 600
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n\s*\n")
_SPACE = re.compile(r"\s+")


def _metadata_texts(site: Path) -> Iterator[str]:
    for path in sorted(site.glob("*.dist-info/METADATA")):
        text = path.read_text(encoding="utf-8", errors="replace")
        _, _, body = text.partition("\n\n")  # headers, then the long description
        yield from _SPLIT.split(body)


def _docstring_texts(site: Path) -> Iterator[str]:
    for path in sorted(site.rglob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if doc:
                    yield from _SPLIT.split(doc)


def corpus_texts(count: int, exclude: set[str], site: Path | None = None) -> list[str]:
    """Up to ``count`` distinct single-line texts, metadata prose first, then docstrings."""
    site = site or Path(sysconfig.get_paths()["purelib"])
    seen, texts = set(exclude), []
    for source in (_metadata_texts(site), _docstring_texts(site)):
        for raw in source:
            text = _SPACE.sub(" ", raw).strip()
            if MIN_CHARS <= len(text) <= MAX_CHARS and text not in seen:
                seen.add(text)
                texts.append(text)
                if len(texts) == count:
                    return texts
    return texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.corpus", description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path)
    parser.add_argument("--count", type=int, default=12_000)
    args = parser.parse_args(argv)
    from golden.generate import load_corpus

    texts = corpus_texts(args.count, set(load_corpus()))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    print(f"{len(texts)} texts, {sum(map(len, texts))} characters → {args.output}")
    return 0 if len(texts) == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
