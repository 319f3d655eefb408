"""What the build records about each artifact for the verifier to derive again: its graph
signature (verify.graph) and its self-goldens (verify.self_golden)."""

from __future__ import annotations

from pathlib import Path

from contracts import ArtifactSpec, Contract
from golden.store import Golden
from verify.backends.runners import artifact_runner
from verify.graph import artifact_signature, signature_path, write_signature
from verify.self_golden import record_self_golden, self_golden_path, write_self_golden


def record_artifact(root: Path, contract: Contract, artifact: ArtifactSpec, golden: Golden) -> None:
    """Write ``artifact``'s signature and self-goldens into the bundle at ``root``, computed with the
    backend the verifier uses on this platform."""
    path = root / artifact.filename
    write_signature(root / signature_path(artifact.key), artifact_signature(path))
    runner = artifact_runner(contract, artifact, path)
    write_self_golden(root / self_golden_path(artifact.key), record_self_golden(runner, contract, golden))
