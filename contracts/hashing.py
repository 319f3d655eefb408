"""sha256 helpers shared by the reference, converters and verifier."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def tree_sha256(root: Path) -> dict[str, str]:
    """sha256 of every regular file under ``root``, keyed by POSIX relative path."""
    return {
        path.relative_to(root).as_posix(): sha256_file(path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def weights_digest(tensors: Iterable[Any]) -> str:
    """A hash of a model's float weights that an exporter cannot change: per tensor of two or more
    elements, its float32 values sorted and its sorted shape (so a transposed or renamed copy, as
    ONNX export makes of Linear weights, hashes the same); the tensor hashes sorted."""
    import numpy as np

    digests = []
    for tensor in tensors:
        array = np.asarray(tensor)
        if array.dtype.kind != "f" or array.size < 2:
            continue
        values = np.sort(array.astype(np.float32, copy=False).ravel())
        digests.append(hashlib.sha256(values.tobytes() + repr(sorted(array.shape)).encode()).hexdigest())
    return sha256_text("\n".join(sorted(digests)) + "\n")


def encoder_fingerprint(tokenizer_hashes: dict[str, str], weights: str) -> str:
    """One hash naming an embedding space: the tokenizer files and the :func:`weights_digest` of
    every weight (MiniLM and head). The verifier recomputes it from the fp32 artifact's content."""
    lines = [f"tokenizer/{name} {tokenizer_hashes[name]}" for name in sorted(tokenizer_hashes)]
    lines.append(f"weights {weights}")
    return sha256_text("\n".join(lines) + "\n")


#: Packages whose code and data decide golden values: the PyTorch reference (with the default
#: token list) and golden generation (with the golden and calibration corpora).
REFERENCE_PACKAGES = ("reference", "golden")


def reference_code_sha256() -> str:
    """What determines the goldens, read from disk without importing it (no torch)."""
    from importlib.util import find_spec

    roots = {}
    for package in REFERENCE_PACKAGES:
        spec = find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(f"package {package!r} not found")
        roots[package] = Path(next(iter(spec.submodule_search_locations)))
    return golden_inputs_sha256(roots)


#: Data files that the converters use but the goldens do not depend on.
NOT_GOLDEN_INPUTS = ("calibration.json",)


def golden_inputs_sha256(roots: dict[str, Path]) -> str:
    """A hash of each package's code as syntax (comments, docstrings and layout left out) and of
    its data files (``data/*`` but NOT_GOLDEN_INPUTS, byte for byte): a comment edit keeps it, a
    corpus or token-list edit changes it."""
    import ast

    digest = hashlib.sha256()
    for package, root in sorted(roots.items()):
        for path in sorted(root.glob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                body = getattr(node, "body", None)
                if (
                    isinstance(body, list)
                    and body
                    and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)
                ):
                    body[0] = ast.Pass()  # a docstring says nothing of the values
            digest.update(f"{package}/{path.name}\n{ast.dump(tree)}\n".encode())
        for path in sorted((root / "data").glob("*")):
            if path.is_file() and path.name not in NOT_GOLDEN_INPUTS:
                digest.update(f"{package}/data/{path.name}\n".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


#: Model metadata that differs from one conversion to the next and says nothing of the model.
NONDETERMINISTIC_METADATA = ("com.github.apple.coremltools.conversion_date",)


def artifact_content_sha256(path: Path) -> str:
    """A hash of what an artifact computes: for an ``.mlpackage``, its Model proto without
    conversion dates (serialized deterministically) and its weight files, but not the package's
    Manifest.json, whose item identifiers are random; an ``.onnx`` file is hashed whole."""
    if not path.is_dir():
        return sha256_file(path)
    from coremltools.proto import Model_pb2

    data = path / "Data" / "com.apple.CoreML"
    spec = Model_pb2.Model()
    spec.ParseFromString((data / "model.mlmodel").read_bytes())
    for model in (spec, *spec.pipeline.models):
        for key in NONDETERMINISTIC_METADATA:
            model.description.metadata.userDefined.pop(key, None)
    lines = [f"model.mlmodel {hashlib.sha256(spec.SerializeToString(deterministic=True)).hexdigest()}"]
    weights = data / "weights"
    if weights.is_dir():
        lines += [f"weights/{name} {digest}" for name, digest in tree_sha256(weights).items()]
    return sha256_text("\n".join(lines) + "\n")
