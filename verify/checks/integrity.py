"""Bundle integrity: contract, manifest hashes, goldens, encoder fingerprint."""

from __future__ import annotations

import numpy as np

from contracts import MANIFEST_FORMAT
from contracts.hashing import (
    artifact_content_sha256,
    encoder_fingerprint,
    reference_code_sha256,
    sha256_file,
    tree_sha256,
    weights_digest,
)
from golden.store import Golden, GoldenError, read_golden
from verify.bundle import MANIFEST_FILE, Bundle, read_json
from verify.graph import artifact_signature, first_difference, parse_signature, signature_path
from verify.result import CheckResult, failed, passed, verdict


def check_contract(bundle: Bundle) -> CheckResult:
    """The bundle's contract.json must be exactly the toolkit's definition of that contract."""
    written, registered = bundle.contract.to_dict(), bundle.registered.to_dict()
    differing = sorted(k for k in set(written) | set(registered) if written.get(k) != registered.get(k))
    return verdict(
        "contract",
        [
            f"contract.json differs from the toolkit's {bundle.name} {bundle.registered.version} in: "
            + ", ".join(differing)
        ]
        if differing
        else [],
        f"{bundle.name} {bundle.contract.version}",
    )


def check_manifest(bundle: Bundle) -> CheckResult:
    """Every file is listed with its sha256, and nothing unlisted is present."""
    if bundle.manifest is None:
        return failed("manifest", bundle.manifest_error or "manifest missing")
    manifest = bundle.manifest
    if manifest.get("manifest_format") != MANIFEST_FORMAT:
        return failed(
            "manifest", f"manifest_format {manifest.get('manifest_format')!r} is not {MANIFEST_FORMAT}"
        )
    listed = manifest.get("files")
    if not isinstance(listed, dict):
        return failed("manifest", "manifest has no 'files' table")
    problems = []
    for relative, digest in sorted(listed.items()):
        try:
            path = bundle.path(relative)
        except ValueError as exc:
            problems.append(str(exc))
            continue
        if path.is_symlink() or not path.is_file():
            problems.append(f"{relative} missing")
        elif sha256_file(path) != digest:
            problems.append(f"{relative} sha256 mismatch")
    symlinks = [p.relative_to(bundle.root).as_posix() for p in bundle.root.rglob("*") if p.is_symlink()]
    problems += [f"{link} is a symlink" for link in symlinks]
    present = set(tree_sha256(bundle.root)) - {MANIFEST_FILE}
    unlisted = sorted(present - set(listed))
    if unlisted:
        problems.append(f"unlisted files: {', '.join(unlisted[:5])}")
    return verdict("manifest", problems, f"{len(listed)} files, sha256 match")


def load_golden(bundle: Bundle) -> tuple[Golden | None, CheckResult]:
    """Goldens readable, finite, shaped by the contract and made for this bundle's weights."""
    try:
        golden = read_golden(bundle.path("golden"))
    except (GoldenError, ValueError) as exc:  # ValueError: a path that is no regular file
        return None, failed("golden", str(exc))
    problems = []
    for spec in (*bundle.registered.inputs, *bundle.registered.outputs):
        array = golden.tensors.get(spec.name)
        if array is None:
            problems.append(f"no golden tensor {spec.name!r}")
            continue
        if array.dtype != np.dtype(spec.dtype):
            problems.append(f"{spec.name} dtype {array.dtype} != {spec.dtype}")
        fixed = [(axis, dim.lower) for axis, dim in enumerate(spec.shape) if dim.is_fixed]
        if array.ndim != len(spec.shape) or any(array.shape[axis] != size for axis, size in fixed):
            problems.append(f"{spec.name} shape {array.shape} does not fit the contract")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            problems.append(f"{spec.name} holds NaN or Inf")
        if (
            spec.values is not None
            and array.size
            and not spec.values[0] <= array.min() <= array.max() <= spec.values[1]
        ):
            problems.append(
                f"{spec.name} values outside the contract range {spec.values[0]}..{spec.values[1]}"
            )
    if golden.rows < max(bundle.registered.golden_batch_sizes):
        problems.append(f"{golden.rows} golden rows, fewer than the largest batch checked")
    problems += stale_golden_problems(bundle, golden.info)
    return (golden if not problems else None), verdict("golden", problems, f"{golden.rows} rows")


#: What a golden records about the reference that made it, and the manifest must agree with.
GOLDEN_PROVENANCE = ("encoder_fingerprint", "weights_provenance", "reference_code_sha256")


def stale_golden_problems(bundle: Bundle, info: dict) -> list[str]:
    """Goldens made by other weights or other reference code than the manifest records."""
    if bundle.manifest is None:
        return []
    stale = [key for key in GOLDEN_PROVENANCE if info.get(key) != bundle.manifest.get(key)]
    if not stale:
        return []
    return [f"stale goldens: their {', '.join(stale)} differ from the manifest's; {regenerate_hint(bundle)}"]


def regenerate_hint(bundle: Bundle) -> str:
    """The build command that regenerates this bundle's goldens from its recorded sources."""
    manifest = bundle.manifest or {}
    sources = manifest.get("sources") or {}
    command = f"build-contract {bundle.root.parent} --model {bundle.name} --seed {manifest.get('seed', 0)}"
    if sources.get("demo_weights") is False:
        recorded = sources.get("weights_file_sha256") or "?"
        command += f" --project FILE (its [weights.{bundle.name}] sha256 {str(recorded)[:16]}…)"
    return f"regenerate with `{command}`"


def check_golden_freshness(bundle: Bundle) -> CheckResult:
    """The bundle's goldens came from this toolkit's reference code; otherwise they may be stale."""
    recorded = (bundle.manifest or {}).get("reference_code_sha256")
    current = reference_code_sha256()
    if recorded != current:
        return failed(
            "golden-freshness",
            f"goldens made by reference code {str(recorded)[:12]}, this toolkit's is {current[:12]}: "
            + regenerate_hint(bundle),
        )
    return passed("golden-freshness", f"reference code {current[:12]}")


def check_encoder_fingerprint(bundle: Bundle) -> CheckResult:
    """Recompute the fingerprint from what the bundle holds: the shipped tokenizer files and the
    weights of the artifact the contract names (``fingerprint_from``, the fp32 ONNX)."""
    manifest = bundle.manifest or {}
    contract = bundle.registered
    try:
        files = [path for path, _ in contract.tokenizer_spec.files]
        tokenizer = {path.removeprefix("tokenizer/"): sha256_file(bundle.path(path)) for path in files}
        source = contract.artifact(contract.fingerprint_from or "")
        actual = encoder_fingerprint(tokenizer, onnx_weights_digest(bundle.path(source.filename)))
    except Exception as exc:  # a missing or unreadable file; its own checks say more
        return failed("encoder-fingerprint", f"cannot recompute the fingerprint: {type(exc).__name__} {exc}")
    recorded = manifest.get("encoder_fingerprint")
    if actual != recorded:
        return failed(
            "encoder-fingerprint",
            f"recorded {str(recorded)[:16]} but the tokenizer and {source.filename} give {actual[:16]}: "
            "the embedding space is not the one the fingerprint names",
        )
    return passed("encoder-fingerprint", f"{actual[:16]}, from the tokenizer and {source.filename}")


def onnx_weights_digest(path) -> str:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    return weights_digest(numpy_helper.to_array(i) for i in model.graph.initializer)


def check_pinning(personality: Bundle, encoder: Bundle) -> CheckResult:
    """PersonalityModel must consume the exact embedding space it was trained on."""
    wanted = (personality.manifest or {}).get("encoder_fingerprint")
    given = (encoder.manifest or {}).get("encoder_fingerprint")
    if not wanted or wanted != given:
        return failed(
            "encoder-pinning",
            f"{personality.root.name} expects encoder {str(wanted)[:16]} "
            f"but {encoder.root} is {str(given)[:16]}: the embedding space changed; retrain PersonalityModel",
        )
    return passed("encoder-pinning", f"{encoder.root.name} {given[:16]}")


def bundle_facts(bundle: Bundle) -> tuple[dict[str, str], list[str]]:
    """Values that ``source`` metadata fields must equal, read from the bundle itself."""
    facts, problems = {}, []
    for key in ("weights_provenance", "encoder_fingerprint"):
        value = (bundle.manifest or {}).get(key)
        if isinstance(value, str):
            facts[key] = value
    if any(m.source == "tokens" for m in bundle.registered.metadata):
        try:
            tokens = read_json(bundle.path("personality-tokens.json"))
            facts["tokens"] = ",".join(tokens)
        except (OSError, ValueError, TypeError) as exc:
            problems.append(f"personality-tokens.json unreadable: {exc}")
    return facts, problems


def check_content(bundle: Bundle, key: str, path) -> CheckResult:
    """The artifact computes what was built: its content hash (Core ML: the Model proto without
    conversion dates, and the weight files; ONNX: the file) equals the manifest's record. Catches
    an edit followed by a careless rehash of the manifest's file table, however small the edit."""
    recorded = ((bundle.manifest or {}).get("artifacts") or {}).get(key, {}).get("content_sha256")
    try:
        actual = artifact_content_sha256(path)
    except Exception as exc:  # an unreadable Model proto; its structure check says more
        return failed(f"{key}/content", f"cannot hash the content: {type(exc).__name__}: {str(exc)[:200]}")
    if actual != recorded:
        return failed(
            f"{key}/content",
            f"content sha256 {actual[:16]} is not the built artifact's {str(recorded)[:16]}: "
            "changed after the build",
        )
    return passed(f"{key}/content", actual[:16])


def check_graph(bundle: Bundle, key: str, path) -> CheckResult:
    """The artifact's graph signature (op types, non-weight attributes, wiring, dtypes) is the one
    recorded at build: catches a changed mode, epsilon or axis whatever its numerical effect."""
    name = f"{key}/graph"
    try:
        recorded = parse_signature(read_json(bundle.path(signature_path(key))))
    except (OSError, ValueError, TypeError) as exc:
        return failed(name, f"no readable signature {signature_path(key)} ({exc}); rebuild the bundle")
    try:
        actual = artifact_signature(path)
    except Exception as exc:  # an unreadable program; the structure check says more
        return failed(name, f"cannot derive the signature: {type(exc).__name__}: {str(exc)[:200]}")
    difference = first_difference(recorded, actual)
    return verdict(name, [difference] if difference else [], f"{len(actual)} ops as built")
