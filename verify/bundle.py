"""Open a bundle on disk: its contract, manifest and goldens, with paths kept inside it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts import Contract, ContractError, get_contract
from verify.result import UnusableInput

CONTRACT_FILE = "contract.json"
MANIFEST_FILE = "manifest.json"
MAX_JSON_BYTES = 64 << 20


@dataclass
class Bundle:
    root: Path
    contract: Contract  # as written in the bundle
    registered: Contract  # the toolkit's own definition of that contract name
    manifest: dict[str, Any] | None
    manifest_error: str | None

    @property
    def name(self) -> str:
        return self.contract.name

    def path(self, relative: str) -> Path:
        """Resolve a bundle-relative path; refuse absolute paths, ``..`` and symlinks out."""
        return inside(self.root, relative)


def inside(root: Path, relative: str) -> Path:
    """``root / relative`` if it stays inside ``root`` and, where it exists, is a regular file or a
    directory of regular files: a FIFO, socket or device would hang or mislead whoever opens it."""
    candidate = Path(relative)
    if candidate.is_absolute() or ".." in candidate.parts or not relative:
        raise ValueError(f"path {relative!r} escapes the bundle")
    try:
        resolved = (root / candidate).resolve()
        base = root.resolve()
    except (RuntimeError, OSError) as exc:  # "Symlink loop", permission, name too long
        raise ValueError(f"path {relative!r} cannot be resolved ({exc})") from None
    if resolved != base and base not in resolved.parents:
        raise ValueError(f"path {relative!r} resolves outside the bundle (symlink?)")
    special = special_files(root / candidate)
    if special:
        raise ValueError(f"{special[0]} is not a regular file or directory")
    return root / candidate


def special_files(path: Path) -> list[str]:
    """Entries at or under ``path`` that are neither regular files nor directories (FIFOs,
    sockets, devices); none when ``path`` does not exist. Never opens anything."""
    import os
    import stat

    def is_special(entry: Path) -> bool:
        try:
            mode = os.stat(entry).st_mode  # follows symlinks: what a reader would open
        except OSError:
            return False
        return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))

    if not path.exists() and not path.is_symlink():
        return []
    if is_special(path):
        return [path.name]
    if path.is_dir():
        return [
            entry.relative_to(path.parent).as_posix()
            for entry in sorted(path.rglob("*"))
            if is_special(entry)
        ]
    return []


def read_json(path: Path) -> Any:
    special = special_files(path)
    if special:
        raise ValueError(f"{special[0]} is not a regular file")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ValueError(f"{path.name} is larger than {MAX_JSON_BYTES >> 20} MiB")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise ValueError(f"{path.name} is nested too deeply to be a bundle file") from None


def open_bundle(root: Path) -> Bundle:
    if not root.exists():
        raise UnusableInput(f"{root}: no such bundle directory")
    if not root.is_dir():
        raise UnusableInput(f"{root}: not a bundle directory")
    contract_path = root / CONTRACT_FILE
    if not contract_path.is_file():
        raise UnusableInput(f"{root}: not a bundle (no {CONTRACT_FILE})")
    try:
        contract = Contract.from_dict(read_json(contract_path))
        registered = get_contract(contract.name)
    except (ContractError, ValueError, OSError) as exc:
        raise UnusableInput(f"{contract_path}: {exc}") from None
    manifest, error = None, None
    try:
        manifest = read_json(root / MANIFEST_FILE)
        if not isinstance(manifest, dict):
            manifest, error = None, f"{MANIFEST_FILE} is not a JSON object"
    except FileNotFoundError:
        error = f"{MANIFEST_FILE} is missing"
    except (ValueError, OSError) as exc:
        error = f"{MANIFEST_FILE} unreadable: {exc}"
    return Bundle(root, contract, registered, manifest, error)


def find_bundles(path: Path) -> list[Path]:
    """A bundle itself, or a directory whose children are bundles (``artifacts/``). Hidden
    children are skipped: they are staging directories of builds in progress or killed."""
    if (path / CONTRACT_FILE).exists() or not path.is_dir():
        return [path]
    children = sorted(
        p
        for p in path.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / CONTRACT_FILE).is_file()
    )
    return children or [path]
