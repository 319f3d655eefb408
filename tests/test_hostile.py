"""Hostile input: each case ends in one line naming the problem and the right exit code, with no
traceback and nothing written. Cases already covered elsewhere: truncated ONNX and Core ML
weights, manifest hash mismatch and ``..`` paths, NaN goldens, newer contract.json
(test_verify.py); corrupt weights and token files for build-contract (test_build.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import rehash_manifest, run_verify

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def _verify(capsys, bundle, tmp_path, *extra):
    report = tmp_path / "report.json"
    code, out, err = run_verify(capsys, bundle, "--json", report, *extra)
    assert "Traceback" not in out + err
    checks = {}
    if report.exists():
        checks = {c["name"]: c for b in json.loads(report.read_text())["bundles"] for c in b["checks"]}
        assert all("\n" not in c["message"] for c in checks.values())
    return code, err, checks


def _expect_failure(capsys, bundle, tmp_path, check: str, text: str, *extra) -> None:
    code, _, checks = _verify(capsys, bundle, tmp_path, *extra)
    assert code == 1
    assert checks[check]["status"] == "fail" and text in checks[check]["message"], checks[check]


def _expect_unusable(capsys, bundle, tmp_path, text: str) -> None:
    code, err, _ = _verify(capsys, bundle, tmp_path)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and text in err, err


def test_contract_missing(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("encoder_v1")
    (bundle / "contract.json").unlink()
    _expect_unusable(capsys, bundle, tmp_path, "not a bundle (no contract.json)")


def test_manifest_missing(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("encoder_v1")
    (bundle / "manifest.json").unlink()
    _expect_failure(capsys, bundle, tmp_path, "manifest", "manifest.json is missing", "--no-numerics")


def test_golden_missing(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    (bundle / "golden" / "golden.safetensors").unlink()
    rehash_manifest(bundle)
    _expect_failure(capsys, bundle, tmp_path, "golden", "golden file missing", "--no-numerics")


def test_corrupt_mlpackage_spec(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    (bundle / "personality_v1.fp16.mlpackage" / "Data" / "com.apple.CoreML" / "model.mlmodel").write_bytes(
        b"\x00garbage" * 10
    )
    rehash_manifest(bundle)
    _expect_failure(
        capsys, bundle, tmp_path, "coreml-fp16/structure", "unreadable .mlpackage", "--no-numerics"
    )


def test_corrupt_golden_safetensors(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    path = bundle / "golden" / "golden.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    rehash_manifest(bundle)
    _expect_failure(capsys, bundle, tmp_path, "golden", "golden files unreadable", "--no-numerics")


def test_absolute_path_in_manifest(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["/etc/passwd"] = "0" * 64
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    _expect_failure(capsys, bundle, tmp_path, "manifest", "'/etc/passwd' escapes the bundle", "--no-numerics")


def test_artifact_symlinked_outside(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    outside = tmp_path / "elsewhere.onnx"
    (bundle / "personality_v1.int8.onnx").rename(outside)
    (bundle / "personality_v1.int8.onnx").symlink_to(outside)
    code, _, checks = _verify(capsys, bundle, tmp_path, "--no-numerics")
    assert code == 1
    assert "personality_v1.int8.onnx is a symlink" in checks["manifest"]["message"]
    assert "resolves outside the bundle" in checks["onnx-int8/present"]["message"]


def test_contract_paths_escaping_the_bundle(copy_bundle, capsys, tmp_path):
    """Paths in contract.json are never followed: the toolkit's own contract names the files."""
    bundle = copy_bundle("personality_v1")
    contract = json.loads((bundle / "contract.json").read_text())
    contract["artifacts"][0]["filename"] = "../../../etc/passwd"
    (bundle / "contract.json").write_text(json.dumps(contract))
    rehash_manifest(bundle)
    _expect_failure(capsys, bundle, tmp_path, "contract", "differs from the toolkit's", "--no-numerics")


def _sparse(path: Path, size: int) -> None:
    with open(path, "r+b" if path.exists() else "wb") as fh:
        fh.truncate(size)


def test_oversized_manifest(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("encoder_v1")
    _sparse(bundle / "manifest.json", 65 << 20)
    _expect_failure(capsys, bundle, tmp_path, "manifest", "larger than 64 MiB", "--no-numerics")


def test_oversized_contract(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("encoder_v1")
    _sparse(bundle / "contract.json", 65 << 20)
    _expect_unusable(capsys, bundle, tmp_path, "larger than 64 MiB")


def test_nan_in_an_artifacts_output(copy_bundle, capsys, tmp_path):
    from verify.selftest.mutants import edit_onnx_initializer

    bundle = copy_bundle("personality_v1")

    def poison(values):
        values[3] = np.nan
        return values

    edit_onnx_initializer(bundle / "personality_v1.fp32.onnx", "output_bias", poison)
    rehash_manifest(bundle)
    _expect_failure(
        capsys, bundle, tmp_path, "onnx-fp32/numerics[logits]", "NaN or Inf in output", "--only", "onnx-fp32"
    )


def test_golden_with_wrong_dtype(copy_bundle, capsys, tmp_path):
    from safetensors.numpy import load_file, save_file

    bundle = copy_bundle("encoder_v1")
    path = bundle / "golden" / "golden.safetensors"
    tensors = load_file(str(path))
    tensors["input_ids"] = tensors["input_ids"].astype(np.int64)
    save_file(tensors, str(path))
    rehash_manifest(bundle)
    _expect_failure(capsys, bundle, tmp_path, "golden", "input_ids dtype int64 != int32", "--no-numerics")


def test_unwritable_report_exits_2(bundles, capsys, tmp_path):
    code, out, err = run_verify(
        capsys, bundles / "encoder_v1", "--no-numerics", "--junit", tmp_path / "no" / "r.xml"
    )
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot write" in err
    assert "Traceback" not in out + err


def test_nothing_loads_a_pickle():
    """Weights, goldens and reports are safetensors/JSON; no code path unpickles."""
    pattern = re.compile(r"\bpickle\b|allow_pickle\s*=\s*True|torch\.load\((?![^)]*weights_only=True)")
    offenders = []
    for package in ("contracts", "converters", "golden", "reference", "verify", "benchmarks"):
        for path in (ROOT / package).rglob("*.py"):
            if pattern.search(path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


# --- issue 13, class 5: files that raised tracebacks or hung ---------------------------------


@pytest.fixture
def time_limit():
    """Fail instead of hanging: SIGALRM after 120 s."""
    import signal

    def expired(*_):
        raise TimeoutError("verify-contract hung")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def _deep_json(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("name", "relative", "check"),
    [
        ("personality_v1", "manifest.json", "manifest"),
        ("personality_v1", "golden/golden.json", "golden"),
        ("personality_v1", "personality-tokens.json", "bundle-facts"),
    ],
)
def test_deeply_nested_json_is_one_line_not_a_recursion_error(
    copy_bundle, capsys, tmp_path, name, relative, check
):
    bundle = copy_bundle(name)
    (bundle / relative).write_text(_deep_json())
    if relative != "manifest.json":
        rehash_manifest(bundle)
    _expect_failure(capsys, bundle, tmp_path, check, "nested too deeply", "--no-numerics")


def test_deeply_nested_contract_json_exits_2(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("encoder_v1")
    (bundle / "contract.json").write_text(_deep_json())
    _expect_unusable(capsys, bundle, tmp_path, "nested too deeply")


def test_artifact_that_is_a_symlink_to_itself(copy_bundle, capsys, tmp_path, time_limit):
    bundle = copy_bundle("personality_v1")
    artifact = bundle / "personality_v1.fp32.onnx"
    artifact.unlink()
    artifact.symlink_to(artifact.name)
    code, _, checks = _verify(capsys, bundle, tmp_path, "--no-numerics")
    assert code == 1 and checks["onnx-fp32/present"]["status"] == "fail"
    assert "cannot be resolved" in checks["onnx-fp32/present"]["message"]


@pytest.mark.parametrize(
    ("name", "relative", "check"),
    [
        ("encoder_v1", "tokenizer/vocab.txt", "encoder-fingerprint"),
        ("personality_v1", "personality_v1.fp32.mlpackage/Manifest.json", "coreml-fp32/present"),
        ("encoder_v1", "golden/golden.json", "golden"),
    ],
)
def test_fifo_in_place_of_a_file_is_reported_not_opened(
    copy_bundle, capsys, tmp_path, time_limit, name, relative, check
):
    import os

    bundle = copy_bundle(name)
    (bundle / relative).unlink()
    os.mkfifo(bundle / relative)
    code, _, checks = _verify(capsys, bundle, tmp_path, "--no-numerics")
    assert code == 1 and checks[check]["status"] == "fail", checks.get(check)
    assert "not a regular file" in checks[check]["message"]


def test_fifo_tokenizer_in_the_audit_exits_2(copy_bundle, capsys, tmp_path, time_limit):
    import os

    bundle = copy_bundle("encoder_v1")
    (bundle / "tokenizer" / "tokenizer.json").unlink()
    os.mkfifo(bundle / "tokenizer" / "tokenizer.json")
    corpus = tmp_path / "c.txt"
    corpus.write_text("a text\n")
    code, _, err = run_verify(capsys, bundle, "--no-numerics", "--only", "onnx-fp32", "--corpus", corpus)
    assert code == 2 and "not a regular file" in err and len(err.strip().splitlines()) == 1


def test_diff_with_a_truncated_onnx_artifact_exits_2(bundles, copy_bundle, capsys):
    from verify.diff_cli import main

    bundle = copy_bundle("personality_v1")
    artifact = bundle / "personality_v1.fp32.onnx"
    artifact.write_bytes(artifact.read_bytes()[:4096])
    rehash_manifest(bundle)
    code = main([str(bundles / "personality_v1"), str(bundle)])
    err = capsys.readouterr().err
    assert code == 2 and "cannot run onnx-fp32" in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
