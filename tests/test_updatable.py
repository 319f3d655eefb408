"""The updatable PersonalityModel: the golden personalization step and the checks on the
updatable Core ML Pipeline, each fed a broken copy of the real artifact."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from contracts import PERSONALITY_V1
from golden.generate import personalization_golden, random_unit_embeddings
from golden.store import PERSONALIZATION_STEM, read_golden
from reference.personality import load_personality
from reference.personalization import multi_hot_targets, personalize
from tests.helpers import edit_coreml_spec, rehash_manifest, run_verify, verify_fails_with
from verify.selftest.mutants import add_extra_updatable_layer, head_layer

TRAINING = PERSONALITY_V1.training
UPDATABLE = TRAINING.filename
ONLY = ("--only", "coreml-updatable")


@pytest.fixture(scope="module")
def personality():
    return load_personality(None, seed=0)


def test_reference_step_changes_only_the_head(personality):
    before = {k: v.clone() for k, v in personality.model.state_dict().items()}
    embedding = random_unit_embeddings(TRAINING.golden_examples, seed=3)
    result = personalize(personality.model, TRAINING, embedding, multi_hot_targets(TRAINING, 325))
    assert set(result.changed) == {"projection.weight", "output_bias"}
    assert result.losses[-1] < result.losses[0]  # the step learns
    after = personality.model.state_dict()  # the caller's model is left as it was
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_targets_are_multi_hot():
    targets = multi_hot_targets(TRAINING, 325)
    assert targets.shape == (TRAINING.golden_examples, 325)
    assert set(np.unique(targets)) == {0.0, 1.0}
    assert (targets.sum(axis=1) == TRAINING.golden_tokens_per_example).all()


@pytest.mark.slow
def test_golden_step_reproduces_bit_identically(bundles, personality):
    stored = read_golden(bundles / "personality_v1" / "golden", PERSONALIZATION_STEM, same_rows=False)
    corpus = read_golden(bundles / "encoder_v1" / "golden").tensors["embedding"]
    tensors, info = personalization_golden(personality, TRAINING, corpus)
    assert set(tensors) == set(stored.tensors)
    for name, value in tensors.items():
        assert value.dtype == stored.tensors[name].dtype
        assert value.tobytes() == stored.tensors[name].tobytes(), name
    assert info["losses"] == stored.info["losses"]
    assert stored.info["changed_parameters"] == ["output_bias", "projection.weight"]


@pytest.mark.slow
def test_updatable_model_checks_pass(bundles, capsys, tmp_path):
    report = tmp_path / "r.json"
    code, out, err = run_verify(capsys, bundles / "personality_v1", "--json", report, *ONLY)
    assert code == 0, out + err
    checks = {c["name"]: c for c in json.loads(report.read_text())["bundles"][0]["checks"]}
    for name in (
        "structure",
        "updatable-parameters",
        "head-weights",
        "training-config",
        "metadata",
        "numerics[logits]",
        "update-replay",
    ):
        assert checks[f"coreml-updatable/{name}"]["status"] == "pass", name
    assert checks["personalization-golden"]["status"] == "pass"
    assert checks["coreml-updatable/on-device-update"]["status"] == "skip"  # macOS only
    logits = checks["coreml-updatable/numerics[logits]"]["details"]["per_batch"]
    assert max(s["max_abs"] for s in logits.values()) <= 1e-5


def _broken(copy_bundle, edit):
    bundle = copy_bundle("personality_v1")
    edit_coreml_spec(bundle / UPDATABLE, edit)
    rehash_manifest(bundle)
    return bundle


def _mark_backbone_updatable(spec):
    spec.pipeline.models[0].isUpdatable = True


def _mark_sigmoid_updatable(spec):
    head_layer(spec, "sigmoid").isUpdatable = True


def _bias_not_updatable(spec):
    head_layer(spec).innerProduct.bias.isUpdatable = False


@pytest.mark.slow
@pytest.mark.parametrize(
    "edit, message",
    [
        (_mark_backbone_updatable, "sub-model 0 (mlProgram) is marked updatable"),
        (_bias_not_updatable, "output_bias (projection.bias) is not updatable"),
        (_mark_sigmoid_updatable, "layer 'sigmoid' is marked updatable"),
        (add_extra_updatable_layer, "extra_linear.weights is updatable"),
    ],
    ids=["backbone-updatable", "bias-not-updatable", "sigmoid-marked", "extra-updatable-layer"],
)
def test_wrong_updatable_parameters(copy_bundle, capsys, tmp_path, edit, message):
    bundle = _broken(copy_bundle, edit)
    verify_fails_with(capsys, tmp_path, bundle, "coreml-updatable/updatable-parameters", *ONLY)
    checks = json.loads((tmp_path / "report.json").read_text())["bundles"][0]["checks"]
    check = next(c for c in checks if c["name"] == "coreml-updatable/updatable-parameters")
    assert message in check["message"]


@pytest.mark.slow
def test_head_weight_differs_from_reference(copy_bundle, capsys, tmp_path):
    def nudge(spec):
        head_layer(spec).innerProduct.weights.floatValue[1234] += 1e-6

    bundle = _broken(copy_bundle, nudge)
    failures = verify_fails_with(capsys, tmp_path, bundle, "coreml-updatable/head-weights", *ONLY)
    # 1e-6 on one weight is inside the logits tolerance: only the exact comparison sees it
    assert "coreml-updatable/numerics[logits]" not in failures


@pytest.mark.slow
def test_head_weights_stored_as_fp16(copy_bundle, capsys, tmp_path):
    def to_fp16(spec):
        weights = head_layer(spec).innerProduct.weights
        values = np.asarray(weights.floatValue, dtype=np.float16)
        weights.ClearField("floatValue")
        weights.float16Value = values.tobytes()

    bundle = _broken(copy_bundle, to_fp16)
    verify_fails_with(capsys, tmp_path, bundle, "coreml-updatable/head-weights", *ONLY)


@pytest.mark.slow
def test_learning_rate_changed(copy_bundle, capsys, tmp_path):
    def faster(spec):
        spec.pipeline.models[
            -1
        ].neuralNetwork.updateParams.optimizer.sgdOptimizer.learningRate.defaultValue = 1.1

    bundle = _broken(copy_bundle, faster)
    failures = verify_fails_with(capsys, tmp_path, bundle, "coreml-updatable/training-config", *ONLY)
    assert "coreml-updatable/update-replay" in failures  # the golden update no longer reproduces


@pytest.mark.slow
def test_loss_on_logits_instead_of_probabilities(copy_bundle, capsys, tmp_path):
    def on_logits(spec):
        spec.pipeline.models[-1].neuralNetwork.updateParams.lossLayers[
            0
        ].meanSquaredErrorLossLayer.input = "logits"

    bundle = _broken(copy_bundle, on_logits)
    verify_fails_with(capsys, tmp_path, bundle, "coreml-updatable/training-config", *ONLY)


@pytest.mark.slow
def test_pipeline_not_marked_updatable(copy_bundle, capsys, tmp_path):
    def frozen(spec):
        spec.isUpdatable = False
        del spec.description.trainingInput[:]

    bundle = _broken(copy_bundle, frozen)
    verify_fails_with(capsys, tmp_path, bundle, "coreml-updatable/structure", *ONLY)


@pytest.mark.slow
def test_golden_update_tampered(copy_bundle, capsys, tmp_path):
    from safetensors.numpy import load_file, save_file

    bundle = copy_bundle("personality_v1")
    path = bundle / "golden" / f"{PERSONALIZATION_STEM}.safetensors"
    tensors = load_file(str(path))
    tensors["updated/output_bias"][7] += 1e-4
    save_file(tensors, str(path))
    rehash_manifest(bundle)
    verify_fails_with(capsys, tmp_path, bundle, "coreml-updatable/update-replay", *ONLY)


@pytest.mark.slow
def test_stale_personalization_golden(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    path = bundle / "golden" / f"{PERSONALIZATION_STEM}.json"
    info = json.loads(path.read_text())
    info["reference_code_sha256"] = "0" * 64
    path.write_text(json.dumps(info))
    rehash_manifest(bundle)
    verify_fails_with(capsys, tmp_path, bundle, "personalization-golden", *ONLY)


@pytest.mark.slow
def test_updatable_model_missing(copy_bundle, capsys, tmp_path):
    import shutil

    bundle = copy_bundle("personality_v1")
    shutil.rmtree(bundle / UPDATABLE)
    rehash_manifest(bundle)
    verify_fails_with(capsys, tmp_path, bundle, "coreml-updatable/present", *ONLY)
