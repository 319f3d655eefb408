"""The project file: ``coreml-contract.toml`` (or ``[tool.coreml-contract]`` in pyproject.toml).

It names a team's trained weight files, each pinned by sha256, the tokens file, the output
directory, which artifacts ship where, the end-to-end and audit budgets and an audit corpus.
``build-contract``, ``verify-contract`` and ``gate-contract`` find it by searching upward from
the working directory, as ruff and tox do; command-line flags override it. Read with the
standard library's ``tomllib``; every key is documented in the README.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.hashing import sha256_file

PROJECT_FILE = "coreml-contract.toml"
PYPROJECT_FILE = "pyproject.toml"
PYPROJECT_TABLE = ("tool", "coreml-contract")
DEFAULT_OUTPUT = "artifacts"
_TOP_KEYS = {"output", "seed", "tokens", "weights", "build", "ship", "budgets", "audit"}
_BUDGET_KINDS = {"pipeline", "audit"}


class ProjectError(ValueError):
    """A project file that cannot be used: unreadable, malformed, or a pinned file that differs."""


@dataclass(frozen=True)
class PinnedFile:
    path: Path  # absolute, resolved against the project file's directory
    sha256: str
    key: str  # where it is named in the project file, e.g. "weights.encoder_v1"

    def verify(self) -> None:
        """Exit-2 material: the file is missing, or its content is not the pinned one."""
        if not self.path.is_file():
            raise ProjectError(f"{self.key}: {self.path} does not exist (pinned sha256 {self.sha256})")
        actual = sha256_file(self.path)
        if actual != self.sha256:
            raise ProjectError(
                f"{self.key}: {self.path} has sha256 {actual} but the project pins {self.sha256}"
            )


@dataclass(frozen=True)
class Project:
    """A parsed project file. Paths are absolute; nothing is read until ``verify_pins``."""

    file: Path
    output: Path
    seed: int = 0
    weights: dict[str, PinnedFile] = field(default_factory=dict)  # contract name -> file
    tokens: PinnedFile | None = None
    precisions: tuple[str, ...] | None = None
    formats: tuple[str, ...] | None = None
    ship: dict[str, dict[str, str]] = field(default_factory=dict)  # target -> contract -> artifact key
    pipeline_budgets: dict[str, float] = field(default_factory=dict)  # metric -> limit
    audit_budgets: dict[str, float] = field(default_factory=dict)
    corpus: Path | None = None
    corpus_column: str = "text"

    @property
    def root(self) -> Path:
        return self.file.parent

    def pinned_files(self) -> list[PinnedFile]:
        return [*self.weights.values(), *([self.tokens] if self.tokens else [])]

    def verify_pins(self) -> None:
        for pinned in self.pinned_files():
            pinned.verify()


def find_project(start: Path | None = None) -> Path | None:
    """The nearest ``coreml-contract.toml``, or pyproject.toml with ``[tool.coreml-contract]``,
    in ``start`` or a parent directory."""
    start = (start or Path.cwd()).resolve()
    for directory in (start, *start.parents):
        candidate = directory / PROJECT_FILE
        if candidate.is_file():
            return candidate
        pyproject = directory / PYPROJECT_FILE
        if pyproject.is_file() and _pyproject_table(pyproject) is not None:
            return pyproject
    return None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ProjectError(f"{path}: not a readable TOML file ({exc})") from None


def _pyproject_table(path: Path) -> dict[str, Any] | None:
    try:
        data: Any = _read_toml(path)
    except ProjectError:
        return None
    for key in PYPROJECT_TABLE:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data if isinstance(data, dict) else None


def load_project(path: Path, known_contracts: dict[str, tuple[str, ...]]) -> Project:
    """Parse ``path``; ``known_contracts`` maps each contract name to its artifact keys.

    Unknown keys, contracts or artifacts are errors, so a typo never silently falls back to a
    default. Pinned files are not read here: ``Project.verify_pins`` does that.
    """
    path = Path(path).resolve()
    data = _pyproject_table(path) if path.name == PYPROJECT_FILE else _read_toml(path)
    if data is None:
        raise ProjectError(f"{path}: no [tool.coreml-contract] table")
    where = f"{path.name}"
    _no_unknown(data, _TOP_KEYS, where)
    root = path.parent
    weights = {}
    for name, entry in _table(data, "weights", where).items():
        if name not in known_contracts:
            raise ProjectError(
                f"{where}: [weights.{name}]: unknown model (known: {', '.join(known_contracts)})"
            )
        weights[name] = _pinned(entry, root, f"weights.{name}", where)
    tokens = _pinned(data["tokens"], root, "tokens", where) if "tokens" in data else None
    build = _table(data, "build", where)
    _no_unknown(build, {"precisions", "formats"}, f"{where} [build]")
    ship: dict[str, dict[str, str]] = {}
    for target, models in _table(data, "ship", where).items():
        if not isinstance(models, dict):
            raise ProjectError(f"{where}: [ship.{target}] must be a table of model = artifact")
        for model, key in models.items():
            if model not in known_contracts:
                raise ProjectError(f"{where}: [ship.{target}]: unknown model {model!r}")
            if key not in known_contracts[model]:
                raise ProjectError(
                    f"{where}: [ship.{target}] {model} = {key!r}: "
                    f"not one of {', '.join(known_contracts[model])}"
                )
        ship[target] = dict(models)
    budgets = _table(data, "budgets", where)
    _no_unknown(budgets, _BUDGET_KINDS, f"{where} [budgets]")
    audit = _table(data, "audit", where)
    _no_unknown(audit, {"corpus", "column"}, f"{where} [audit]")
    return Project(
        file=path,
        output=_path(data.get("output", DEFAULT_OUTPUT), root, "output", where),
        seed=_int(data.get("seed", 0), "seed", where),
        weights=weights,
        tokens=tokens,
        precisions=_strings(build.get("precisions"), "build.precisions", where),
        formats=_strings(build.get("formats"), "build.formats", where),
        ship=ship,
        pipeline_budgets=_numbers(budgets.get("pipeline", {}), "budgets.pipeline", where),
        audit_budgets=_numbers(budgets.get("audit", {}), "budgets.audit", where),
        corpus=_path(audit["corpus"], root, "audit.corpus", where) if "corpus" in audit else None,
        corpus_column=str(audit.get("column", "text")),
    )


def _no_unknown(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ProjectError(
            f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})"
        )


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ProjectError(f"{where}: {key} must be a table")
    return value


def _path(value: Any, root: Path, key: str, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ProjectError(f"{where}: {key} must be a non-empty path string")
    return (root / value).resolve()


def _int(value: Any, key: str, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProjectError(f"{where}: {key} must be an integer")
    return value


def _strings(value: Any, key: str, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ProjectError(f"{where}: {key} must be a non-empty list of strings")
    return tuple(value)


def _numbers(value: Any, key: str, where: str) -> dict[str, float]:
    if not isinstance(value, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
    ):
        raise ProjectError(f"{where}: [{key}] must map metric names to numbers")
    return {k: float(v) for k, v in value.items()}


def _pinned(entry: Any, root: Path, key: str, where: str) -> PinnedFile:
    if not isinstance(entry, dict):
        raise ProjectError(f"{where}: {key} must be a table with path and sha256")
    _no_unknown(entry, {"path", "sha256"}, f"{where} [{key}]")
    path = _path(entry.get("path"), root, f"{key}.path", where)
    digest = entry.get("sha256")
    if not isinstance(digest, str) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ProjectError(
            f"{where}: {key}: {path} is not pinned (sha256 = 64 lowercase hex digits required; "
            f"the file's is {sha256_file(path) if path.is_file() else 'unknown: the file is missing'})"
        )
    return PinnedFile(path, digest, key)


def known_contracts() -> dict[str, tuple[str, ...]]:
    """Each registered contract with its artifact keys, for validating a project file."""
    from contracts import REGISTRY

    return {name: tuple(a.key for a in contract.artifacts) for name, contract in REGISTRY.items()}


def locate_project(
    explicit: Path | None, disabled: bool = False, start: Path | None = None
) -> Project | None:
    """The project to use: ``explicit`` (--project), else the nearest project file upward from
    ``start``, else None. Pins are verified: a missing or changed file raises ProjectError."""
    if disabled:
        return None
    path = explicit if explicit is not None else find_project(start)
    if path is None:
        return None
    if not Path(path).is_file():
        raise ProjectError(f"{path}: no such project file")
    project = load_project(Path(path), known_contracts())
    project.verify_pins()
    return project


def add_project_arguments(parser) -> None:
    """``--project FILE`` and ``--no-project``, shared by the command-line tools."""
    parser.add_argument(
        "--project", type=Path, metavar="FILE", help=f"project file (default: {PROJECT_FILE} found upward)"
    )
    parser.add_argument("--no-project", action="store_true", help="ignore any project file")
