"""verify-contract against the real default bundles, and against broken copies of them.

Every check gets a bundle broken in the way it exists to catch, and must name itself.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from tests.helpers import edit_coreml_spec, failing_checks, rehash_manifest, run_verify, verify_fails_with
from verify.selftest.mutants import (
    edit_onnx_initializer,
    perturb_onnx_initializer,
    rerecord,
    scale_onnx_output,
    signed_onnx_weights,
    swap_golden_texts,
    swap_vocabulary,
)

pytestmark = pytest.mark.slow


def test_directory_of_bundles_is_expanded(bundles, capsys):
    code, out, _ = run_verify(capsys, bundles, "--no-numerics", "--quiet")
    assert code == 0 and "0 failed" in out


def test_fp32_onnx_encoder_matches_goldens_within_1e5(bundles, capsys, tmp_path):
    report = tmp_path / "r.json"
    run_verify(capsys, bundles / "encoder_v1", "--json", report, "--only", "onnx-fp32")
    checks = {c["name"]: c for c in json.loads(report.read_text())["bundles"][0]["checks"]}
    for batch, stats in checks["onnx-fp32/numerics[embedding]"]["details"]["per_batch"].items():
        assert stats["max_abs"] <= 1e-5, (batch, stats)
    assert set(checks["onnx-fp32/numerics[embedding]"]["details"]["per_batch"]) == {"1", "7", "64"}


@pytest.mark.parametrize("path", ["/does/not/exist", "README.md"], ids=["missing", "not-a-directory"])
def test_unusable_input_exits_2_with_one_line(path, capsys):
    code, out, err = run_verify(capsys, path)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("verify-contract: error:")


def test_unreadable_contract_exits_2(copy_bundle, capsys):
    bundle = copy_bundle("personality_v1")
    (bundle / "contract.json").write_text("{not json")
    code, _, err = run_verify(capsys, bundle)
    assert code == 2 and "contract.json" in err and len(err.strip().splitlines()) == 1


def test_contract_from_newer_toolkit_exits_2(copy_bundle, capsys):
    bundle = copy_bundle("personality_v1")
    data = json.loads((bundle / "contract.json").read_text())
    data["contract_format"] = 99
    (bundle / "contract.json").write_text(json.dumps(data))
    code, _, err = run_verify(capsys, bundle)
    assert code == 2 and "upgrade coreml-contract" in err


# --- structure and metadata ------------------------------------------------------------


def test_coreml_batch_range_changed(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("encoder_v1")

    def narrow(spec):
        spec.description.input[0].type.multiArrayType.shapeRange.sizeRanges[0].upperBound = 32

    edit_coreml_spec(bundle / "encoder_v1.fp32.mlpackage", narrow)
    rehash_manifest(bundle, contents=True)  # rebuilt that way: only its own check fails
    failures = verify_fails_with(capsys, tmp_path, bundle, "coreml-fp32/structure", "--no-numerics")
    assert failures == {"coreml-fp32/structure"}


def test_coreml_spec_version_changed(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")

    def older(spec):
        spec.specificationVersion = 9

    edit_coreml_spec(bundle / "personality_v1.fp32.mlpackage", older)
    rehash_manifest(bundle)
    verify_fails_with(capsys, tmp_path, bundle, "coreml-fp32/structure", "--no-numerics")


def test_coreml_metadata_key_missing(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    edit_coreml_spec(
        bundle / "personality_v1.fp32.mlpackage",
        lambda spec: spec.description.metadata.userDefined.pop("vocab_size"),
    )
    rehash_manifest(bundle, contents=True)  # rebuilt that way: only its own check fails
    failures = verify_fails_with(capsys, tmp_path, bundle, "coreml-fp32/metadata", "--no-numerics")
    assert failures == {"coreml-fp32/metadata"}


def test_onnx_metadata_value_edited(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("encoder_v1")
    path = bundle / "encoder_v1.fp32.onnx"
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "embedding_dim":
            prop.value = "768"
    onnx.save(model, str(path))
    rehash_manifest(bundle)
    verify_fails_with(capsys, tmp_path, bundle, "onnx-fp32/metadata", "--no-numerics")


def test_onnx_fixed_batch_dim(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    path = bundle / "personality_v1.fp32.onnx"
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, str(path))
    rehash_manifest(bundle)
    verify_fails_with(capsys, tmp_path, bundle, "onnx-fp32/io", "--no-numerics")


def test_swapped_token_order(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    path = bundle / "personality-tokens.json"
    tokens = json.loads(path.read_text())
    tokens[0], tokens[1] = tokens[1], tokens[0]
    path.write_text(json.dumps(tokens))
    rehash_manifest(bundle)
    failures = verify_fails_with(capsys, tmp_path, bundle, "onnx-fp32/metadata", "--no-numerics")
    assert "coreml-fp32/metadata" in failures


# --- integrity -----------------------------------------------------------------------


def test_manifest_hash_mismatch(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    with open(bundle / "personality-tokens.json", "a") as fh:
        fh.write(" ")
    verify_fails_with(capsys, tmp_path, bundle, "manifest", "--no-numerics")


def test_truncated_onnx(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    path = bundle / "personality_v1.fp32.onnx"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    failures = verify_fails_with(capsys, tmp_path, bundle, "manifest", "--only", "onnx-fp32")
    assert "onnx-fp32/checker" in failures


def test_truncated_coreml_weights(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    weights = (
        bundle / "personality_v1.fp32.mlpackage" / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    )
    weights.write_bytes(weights.read_bytes()[:1000])
    failures = verify_fails_with(capsys, tmp_path, bundle, "manifest", "--only", "coreml-fp32")
    assert "coreml-fp32/numerics" in failures


def test_unlisted_file(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    (bundle / "extra.bin").write_bytes(b"x")
    verify_fails_with(capsys, tmp_path, bundle, "manifest", "--no-numerics")


def test_manifest_path_escaping_bundle(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["files"]["../outside.json"] = "0" * 64
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    failures = verify_fails_with(capsys, tmp_path, bundle, "manifest", "--no-numerics")
    assert failures == {"manifest"}


def test_contract_json_batch_range_edited(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    data = json.loads((bundle / "contract.json").read_text())
    data["inputs"][0]["shape"][0]["upper"] = 32
    (bundle / "contract.json").write_text(json.dumps(data))
    rehash_manifest(bundle)
    verify_fails_with(capsys, tmp_path, bundle, "contract", "--no-numerics")


def test_golden_with_nan(copy_bundle, capsys, tmp_path):
    from safetensors.numpy import load_file, save_file

    bundle = copy_bundle("personality_v1")
    path = bundle / "golden" / "golden.safetensors"
    tensors = load_file(str(path))
    tensors["logits"][3, 7] = np.nan
    save_file(tensors, str(path))
    rehash_manifest(bundle)
    verify_fails_with(capsys, tmp_path, bundle, "golden", "--no-numerics")


def test_tampered_encoder_fingerprint(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("encoder_v1")
    with open(bundle / "tokenizer" / "vocab.txt", "a") as fh:
        fh.write("newtoken\n")
    rehash_manifest(bundle)
    verify_fails_with(capsys, tmp_path, bundle, "encoder-fingerprint", "--no-numerics")


def test_personality_pinned_to_other_encoder(bundles, copy_bundle, capsys, tmp_path):
    personality = copy_bundle("personality_v1")
    manifest = json.loads((personality / "manifest.json").read_text())
    manifest["encoder_fingerprint"] = "f" * 64
    (personality / "manifest.json").write_text(json.dumps(manifest))
    rehash_manifest(personality)
    report = tmp_path / "report.json"
    code, out, _ = run_verify(capsys, bundles / "encoder_v1", personality, "--no-numerics", "--json", report)
    assert code == 1 and "retrain PersonalityModel" in out
    assert "encoder-pinning" in failing_checks(report)


def test_missing_artifact(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    (bundle / "personality_v1.fp32.onnx").unlink()
    rehash_manifest(bundle)
    verify_fails_with(capsys, tmp_path, bundle, "onnx-fp32/present", "--no-numerics")


# --- numerics ------------------------------------------------------------------------


def test_perturbed_onnx_weight(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("encoder_v1")
    # 1e-3 relative with random signs: a uniform 1.001 scale moves the L2-normalised embedding
    # by only ~2.5e-6
    perturb_onnx_initializer(bundle / "encoder_v1.fp32.onnx", "head.projection.weight", 1e-3)
    rehash_manifest(bundle)
    failures = verify_fails_with(
        capsys, tmp_path, bundle, "onnx-fp32/numerics[embedding]", "--only", "onnx-fp32"
    )
    assert not any(name.startswith("coreml") for name in failures)


def test_single_onnx_weight_changed_in_backbone(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")

    def nudge(values):
        values[5] += 0.05
        return values

    edit_onnx_initializer(bundle / "personality_v1.fp32.onnx", "linear2.bias", nudge)
    rehash_manifest(bundle)
    verify_fails_with(capsys, tmp_path, bundle, "onnx-fp32/numerics[logits]", "--only", "onnx-fp32")


def test_regenerated_golden_from_other_weights(bundles, copy_bundle, capsys, tmp_path):
    """Goldens swapped for another bundle's: provenance no longer matches the manifest."""
    bundle = copy_bundle("personality_v1")
    info = json.loads((bundle / "golden" / "golden.json").read_text())
    info["weights_provenance"] = "demo weights (seed 1, not trained)"
    (bundle / "golden" / "golden.json").write_text(json.dumps(info))
    rehash_manifest(bundle)
    verify_fails_with(capsys, tmp_path, bundle, "golden", "--no-numerics")


def test_signed_int8_weights_are_not_portable(copy_bundle, capsys, tmp_path):
    """u8s8 integer GEMMs saturate on x86 CPUs without VNNI: caught by structure, whatever the CPU."""
    bundle = copy_bundle("personality_v1")
    signed_onnx_weights(bundle / "personality_v1.int8.onnx")
    rerecord(bundle, "onnx-int8")  # rebuilt that way: only its own check fails
    rehash_manifest(bundle, contents=True)
    failures = verify_fails_with(capsys, tmp_path, bundle, "onnx-int8/portable-int8", "--no-numerics")
    assert failures == {"onnx-int8/portable-int8"}


def test_rows_not_unit_norm_are_caught_by_the_norm_bound(copy_bundle, capsys, tmp_path):
    """``embedding`` x (1 + 2e-5): max_abs moves ~1e-6 (bound 3e-6) and cosines not at all;
    only the unit_norm bound sees it (issue 13, class 6)."""
    bundle = copy_bundle("encoder_v1")
    scale_onnx_output(bundle / "encoder_v1.fp32.onnx", "embedding", 1 + 2e-5)
    rehash_manifest(bundle)
    verify_fails_with(capsys, tmp_path, bundle, "onnx-fp32/numerics[embedding]", "--only", "onnx-fp32")
    report = json.loads((tmp_path / "report.json").read_text())
    check = next(c for c in report["bundles"][0]["checks"] if c["name"] == "onnx-fp32/numerics[embedding]")
    assert check["message"].startswith("max_norm_error") and "max_abs" not in check["message"]


def test_pinning_needs_the_personality_goldens_made_from_this_encoders_outputs(copy_bundle, capsys, tmp_path):
    """Encoder goldens regenerated (one embedding row moved by 1e-6), fingerprint left as it was:
    the personality bundle no longer consumes this encoder's outputs (issue 13, class 4)."""
    from golden.store import read_golden, write_golden

    encoder, personality = copy_bundle("encoder_v1"), copy_bundle("personality_v1")
    golden = read_golden(encoder / "golden")
    golden.tensors["embedding"][5, :3] += 1e-6
    info = {k: v for k, v in golden.info.items() if k != "golden_format"}
    write_golden(encoder / "golden", golden.tensors, info)
    rehash_manifest(encoder)
    report = tmp_path / "r.json"
    code, out, _ = run_verify(capsys, encoder, personality, "--no-numerics", "--json", report)
    assert code == 1 and failing_checks(report) == {"encoder-pinning"}, out[-2000:]
    checks = [c for b in json.loads(report.read_text())["bundles"] for c in b["checks"]]
    assert "in 1 of 80 rows" in next(c["message"] for c in checks if c["name"] == "encoder-pinning")


@pytest.mark.parametrize("mutate", [swap_vocabulary, swap_golden_texts], ids=["vocabulary", "golden-texts"])
def test_tokenizer_must_reproduce_the_golden_inputs(copy_bundle, capsys, tmp_path, mutate):
    """Issue 13, class 3: two vocabulary entries swapped in both tokenizer files, or two golden
    texts swapped; the tokenizer check re-tokenizes the golden texts and names the rows."""
    bundle = copy_bundle("encoder_v1")
    mutate(bundle)
    rehash_manifest(bundle)
    verify_fails_with(capsys, tmp_path, bundle, "tokenizer", "--no-numerics")
    report = json.loads((tmp_path / "report.json").read_text())
    message = next(c["message"] for c in report["bundles"][0]["checks"] if c["name"] == "tokenizer")
    assert "re-tokenizing the golden texts gives other input_ids" in message
    if mutate is swap_vocabulary:
        assert "tokenizer/vocab.txt is not the published file" in message


@pytest.mark.parametrize(
    ("name", "artifact", "key", "edit"),
    [
        ("encoder_v1", "encoder_v1.int8.onnx", "onnx-int8", "scales"),
        ("personality_v1", "personality_v1.int8.onnx", "onnx-int8", "weights"),
        ("encoder_v1", "encoder_v1.int8.mlpackage", "coreml-int8", "int8"),
    ],
)
def test_edits_smaller_than_the_variants_error_change_its_content(
    copy_bundle, capsys, tmp_path, name, artifact, key, edit
):
    """Issue 13, class 1: a 1e-3 change of the int8 encoder's weight scales, the int8 head
    perturbed by 1e-3, one int8 Core ML weight 25 -> -127: all inside the fp32-golden bounds,
    all caught by the content hash the build recorded."""
    bundle = copy_bundle(name)
    path = bundle / artifact
    if edit == "scales":
        perturb_onnx_initializer(path, "/weight_scale", 1e-3)
    elif edit == "weights":
        edit_onnx_initializer(path, "/weight_scale", lambda v: v * (1 + 1e-3))
    else:
        blob = next(path.rglob("weight.bin"))
        data = bytearray(blob.read_bytes())
        position = data.index(bytes([25]), 4096)
        data[position] = 0x81  # int8 -127
        blob.write_bytes(bytes(data))
    rehash_manifest(bundle)
    failures = verify_fails_with(capsys, tmp_path, bundle, f"{key}/content", "--no-numerics")
    assert f"{key}/content" in failures
