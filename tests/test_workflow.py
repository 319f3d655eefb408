"""The model pull-request workflow is well formed and runs what CI and the README run."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "model-contract.yml"


def _workflow() -> dict:
    data = yaml.safe_load(WORKFLOW.read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as true
    return data


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_workflow_is_well_formed():
    workflow = _workflow()
    assert set(workflow["jobs"]) == {"linux", "macos"}
    for name, job in workflow["jobs"].items():
        assert job["runs-on"] and job["steps"], name
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), (name, step)
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", step["uses"]), step["uses"]
    assert workflow["jobs"]["macos"]["needs"] == "linux"
    assert workflow["jobs"]["macos"]["runs-on"].startswith("macos")


def test_runs_on_pull_requests_touching_models():
    paths = _workflow()["on"]["pull_request"]["paths"]
    for touched in ("reference/**", "weights/**", "contracts/**", "converters/**"):
        assert touched in paths


def test_runs_the_commands_of_ci_and_the_readme():
    linux = _runs(_workflow()["jobs"]["linux"])
    readme = (ROOT / "README.md").read_text()
    commands = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    assert "tox -e bundles" in commands and "tox " in commands
    assert "bash .ci/run" in linux
    assert "python3 -m tox\n" in (ROOT / ".ci" / "run").read_text()  # the README's `tox`
    assert "GITHUB_STEP_SUMMARY" in linux


def test_gates_the_pull_requests_model_with_the_gate_command():
    """The workflow's logic is `gate-contract` (tests/test_gate.py), not shell: it builds head and
    base from the project file, verifies, diffs, and fails with the reason."""
    workflow = _workflow()
    linux = workflow["jobs"]["linux"]
    gate = [s for s in linux["steps"] if "tox -e gate" in s.get("run", "")]
    assert len(gate) == 1 and re.search(r"tox -e gate -- --base \S*GITHUB_BASE_REF", gate[0]["run"])
    tox = (ROOT / "tox.ini").read_text()
    assert re.search(r"\[testenv:gate\][^\[]*commands = gate-contract \{posargs\}", tox)
    checkout = next(s for s in linux["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["lfs"] is True and checkout["with"]["fetch-depth"] == 0
    summary = next(s for s in linux["steps"] if "GITHUB_STEP_SUMMARY" in s.get("run", ""))
    assert "reports/gate.md" in summary["run"] and summary.get("if") == "always()"
    paths = workflow["on"]["pull_request"]["paths"]
    assert "coreml-contract.toml" in paths and "weights/**" in paths


def test_macos_job_runs_native_checks_and_uploads_reports():
    workflow = _workflow()
    macos = workflow["jobs"]["macos"]
    assert "--compute-units ${{ matrix.compute_units }}" in _runs(macos)
    install = next(s["run"] for s in macos["steps"] if "pip install" in s.get("run", ""))
    assert "pip install -e .\n" in install and "[build]" not in install  # verify-only: no torch
    assert "find_spec('torch')" in install
    for job in workflow["jobs"].values():
        uploads = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
        assert any(s["with"]["path"] == "reports/" and s.get("if") == "always()" for s in uploads)
    setup = [
        s for s in workflow["jobs"]["linux"]["steps"] if s.get("uses", "").startswith("actions/setup-python")
    ]
    assert setup[0]["with"]["cache"] == "pip"


def test_macos_job_runs_every_compute_unit_setting_with_bounds_for_each():
    """The macOS job is a matrix over the four compute unit settings, each uploading its own
    reports, and the contract holds bounds for each, marked as not yet measured on device."""
    from contracts import REGISTRY
    from verify.backends.runners import COMPUTE_UNITS

    macos = _workflow()["jobs"]["macos"]
    units = macos["strategy"]["matrix"]["compute_units"]
    assert sorted(units) == sorted(COMPUTE_UNITS) and macos["strategy"]["fail-fast"] is False
    upload = next(s for s in macos["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    assert "${{ matrix.compute_units }}" in upload["with"]["name"]
    for contract in REGISTRY.values():
        for key in ("coreml-fp16", "coreml-int8"):
            artifact = contract.artifact(key)
            for unit in units:
                device = artifact.bounds_on(unit)
                assert device is not None and not device.measured_on_device, (contract.name, key, unit)
                assert "not measured on device" in device.basis
