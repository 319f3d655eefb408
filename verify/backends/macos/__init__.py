"""macOS only: run an MLUpdateTask on the updatable model (``personalize.swift``) and compare the
updated model's logits with the golden personalization step. Never runs on Linux."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from golden.store import Golden
from verify.result import CheckResult, failed, skipped, verdict

UPDATE_TIMEOUT_S = 600


def run_update_task(name: str, path: Path, personalization: Golden, contract) -> CheckResult:
    training = contract.training
    swift = shutil.which("swift")
    if swift is None:
        return skipped(name, "the swift toolchain (Xcode command line tools) is not installed")
    tensors = personalization.tensors
    request = {
        "embedding": tensors["embedding"].tolist(),
        "target": tensors["target"].astype(float).tolist(),
        "learning_rate": personalization.info["learning_rate"],
        "mini_batch_size": personalization.info["mini_batch_size"],
        "epochs": personalization.info["epochs"],
        "input": contract.inputs[0].name,
        "target_name": training.target,
        "output": contract.output("logits").name,
    }
    script = resources.files("verify.backends.macos") / "personalize.swift"
    with tempfile.TemporaryDirectory() as scratch:
        request_path, result_path = Path(scratch) / "request.json", Path(scratch) / "result.json"
        request_path.write_text(json.dumps(request))
        done = subprocess.run(
            [swift, str(script), str(path), str(request_path), str(result_path)],
            capture_output=True,
            text=True,
            timeout=UPDATE_TIMEOUT_S,
        )
        if done.returncode != 0:
            return failed(name, f"MLUpdateTask failed: {done.stderr.strip()[-300:]}")
        logits = np.asarray(json.loads(result_path.read_text())["logits"], dtype=np.float32)
    expected = tensors["updated_logits"]
    bound = training.on_device_bound
    if logits.shape != expected.shape:
        return failed(name, f"updated logits shape {logits.shape} != golden {expected.shape}")
    error = float(np.abs(logits - expected).max())
    problems = [] if error <= bound.limit else [f"updated logits max_abs {error:.3g} > {bound.limit:g}"]
    return verdict(name, problems, f"updated logits max_abs {error:.3g} (<= {bound.limit:g})", max_abs=error)
