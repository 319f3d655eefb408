"""The enumerated-shapes encoder (issue 16): batch 1 x sequence {16, 32, 64, 128, 256}, each row
padded to the next size, attention_mask derived from input_ids. The contract data, the runner
that feeds it as the app does, and broken artifacts the verifier must catch."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from contracts import ENCODER_V1, Contract, Dim
from tests.helpers import verify_fails_with
from verify.backends.runners import EnumeratedRunner, InputContractError, Runner, artifact_runner
from verify.selftest.mutants import rehash_manifest

KEY = "coreml-fp16-enumerated"
ARTIFACT = ENCODER_V1.artifact(KEY)


class Recording(Runner):
    """Records what reaches the artifact; returns each row's id sum, so rows can be told apart."""

    backend = "recording"

    def __init__(self, contract: Contract) -> None:
        super().__init__(contract)
        self.shapes: list[tuple[int, ...]] = []

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = inputs["input_ids"]
        self.shapes.append(ids.shape)
        total = ids.sum(axis=1, keepdims=True).astype(np.float32)
        return {"sentence_embedding": np.repeat(total, 384, 1), "embedding": np.repeat(total, 1536, 1)}


def _batch(lengths: list[int], width: int) -> dict[str, np.ndarray]:
    ids = np.zeros((len(lengths), width), np.int32)
    for row, length in enumerate(lengths):
        ids[row, :length] = np.arange(101, 101 + length)
    return {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int32)}


def test_the_contract_states_the_shapes_and_round_trips():
    (ids,) = ENCODER_V1.artifact_inputs(ARTIFACT)
    assert ids.name == "input_ids"
    assert ids.shape == (Dim("batch", 1, 1), Dim("sequence", 16, 256, (16, 32, 64, 128, 256)))
    assert ARTIFACT.shape_strategy == "enumerated" and ENCODER_V1.golden_batches(ARTIFACT) == (1,)
    assert Contract.from_json(ENCODER_V1.to_json()) == ENCODER_V1
    assert not ids.shape[1].accepts(20) and ids.shape[1].accepts(32)


def test_each_row_runs_alone_padded_to_the_next_enumerated_size():
    sees = ENCODER_V1.as_artifact_sees_it(ARTIFACT)
    inner = Recording(sees)
    runner = EnumeratedRunner(ENCODER_V1, ARTIFACT, inner)
    inputs = _batch([3, 16, 17, 200, 0], width=256)
    outputs = runner.run(inputs)
    assert inner.shapes == [(1, 16), (1, 16), (1, 32), (1, 256), (1, 16)]
    expected = inputs["input_ids"].sum(axis=1).astype(np.float32)
    np.testing.assert_array_equal(outputs["embedding"][:, 0], expected)  # rows kept in order
    assert outputs["embedding"].shape == (5, 1536)


def test_a_mask_the_artifact_would_not_derive_is_refused():
    runner = EnumeratedRunner(ENCODER_V1, ARTIFACT, Recording(ENCODER_V1.as_artifact_sees_it(ARTIFACT)))
    inputs = _batch([5, 8], width=8)
    inputs["attention_mask"][1, 6:] = 0  # real tokens masked out: not what input_ids != 0 gives
    with pytest.raises(InputContractError, match=r"attention_mask: row 1 is not \(input_ids != 0\)"):
        runner.run(inputs)
    with pytest.raises(InputContractError, match="sequence 257 outside the contract range"):
        runner.run(_batch([3], width=257))


def test_the_built_artifact_accepts_only_its_enumerated_shapes(bundles):
    sees = ENCODER_V1.as_artifact_sees_it(ARTIFACT)
    runner = artifact_runner(ENCODER_V1, ARTIFACT, bundles / "encoder_v1" / ARTIFACT.filename)
    assert isinstance(runner, EnumeratedRunner)
    executor = runner.inner.executor  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="is not one of the enumerated 1x16, 1x32, 1x64, 1x128, 1x256"):
        executor.run({"input_ids": np.full((1, 20), 101, np.int32)})
    with pytest.raises(InputContractError, match=r"sequence 20 not one of the contract's \{16, 32"):
        runner.inner.run({"input_ids": np.full((1, 20), 101, np.int32)})
    assert [spec.name for spec in sees.inputs] == ["input_ids"]


def test_a_range_shaped_program_under_the_enumerated_entry_fails(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("encoder_v1")
    target = bundle / ARTIFACT.filename
    shutil.rmtree(target)
    shutil.copytree(bundle / ENCODER_V1.artifact("coreml-fp16").filename, target)
    rehash_manifest(bundle, contents=True)
    failures = verify_fails_with(capsys, tmp_path, bundle, f"{KEY}/structure", "--only", KEY, "--no-numerics")
    assert f"{KEY}/shape-strategy" in failures
    out = (tmp_path / "report.json").read_text()
    assert "inputs ['input_ids', 'attention_mask'] != contract ['input_ids']" in out


def test_an_artifact_that_lets_padding_in_fails_its_numerics(encoder, copy_bundle, capsys, tmp_path):
    """Padding must leave the embedding unchanged: a program that derives its mask from the wrong
    pad value (so every padded position counts) is converted for real and caught by numerics."""
    from converters.coreml import DerivedInputs, convert_to_mlprogram, enumerated_example

    bundle = copy_bundle("encoder_v1")
    enumerated = ARTIFACT.enumerated
    assert enumerated is not None
    leaky = replace(ARTIFACT, enumerated=replace(enumerated, pad_value=-1))
    example = tuple(encoder.tokenize(["a short text"]).values())
    model = convert_to_mlprogram(
        DerivedInputs(encoder.model, ENCODER_V1, leaky),
        ENCODER_V1.as_artifact_sees_it(ARTIFACT),
        enumerated_example(ENCODER_V1, ARTIFACT, example),
        "fp16",
        _metadata_of(bundle),
    )
    shutil.rmtree(bundle / ARTIFACT.filename)
    model.save(str(bundle / ARTIFACT.filename))
    rehash_manifest(bundle, contents=True)
    failures = verify_fails_with(capsys, tmp_path, bundle, f"{KEY}/numerics[embedding]", "--only", KEY)
    assert f"{KEY}/structure" not in failures and f"{KEY}/shape-strategy" not in failures


def _metadata_of(bundle) -> dict[str, str]:
    """The metadata the bundle's range-shaped fp16 program carries (the same for every artifact)."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(bundle / ENCODER_V1.artifact("coreml-fp16").filename))
    return dict(spec.description.metadata.userDefined)


def test_padding_to_any_enumerated_size_leaves_the_embedding_within_bounds(bundles):
    """One golden row, run by the built artifact at every enumerated size that holds it, against
    the reference's embedding of the unpadded row: each within the artifact's bounds."""
    from golden.store import read_golden
    from verify.checks.numerics import judge

    golden = read_golden(bundles / "encoder_v1" / "golden")
    lengths = golden.tensors["attention_mask"].sum(axis=1)
    row = int(np.flatnonzero((lengths > 8) & (lengths <= 16))[0])
    length = int(lengths[row])
    runner = artifact_runner(ENCODER_V1, ARTIFACT, bundles / "encoder_v1" / ARTIFACT.filename)
    inner = runner.inner  # type: ignore[attr-defined]
    enumerated = ARTIFACT.enumerated
    assert enumerated is not None
    by_size = {}
    for size in enumerated.sizes:
        ids = np.zeros((1, size), np.int32)
        ids[0, :length] = golden.tensors["input_ids"][row, :length]
        by_size[size] = inner.run({"input_ids": ids})["embedding"]
    tolerance = ARTIFACT.tolerance_for("embedding")
    assert tolerance is not None
    expected = golden.tensors["embedding"][row : row + 1]
    result = judge("padded", by_size, expected, tolerance.bounds, unit_norm=True)
    assert not result.failed, result.message
    spread = max(np.abs(by_size[s] - by_size[16]).max() for s in enumerated.sizes)
    assert spread < 1e-3  # fp16 rounding at most; padding itself changes nothing


@pytest.mark.slow
def test_an_app_target_can_ship_the_enumerated_encoder(bundles, capsys, tmp_path, monkeypatch):
    """A project's [ship.app] naming the enumerated encoder gets that pipeline verified end to end."""
    import json

    from tests.helpers import run_verify

    (tmp_path / "coreml-contract.toml").write_text(
        f'[ship.app]\nencoder_v1 = "{KEY}"\npersonality_v1 = "coreml-fp16"\n'
    )
    monkeypatch.chdir(tmp_path)
    report = tmp_path / "r.json"
    code, out, err = run_verify(capsys, bundles, "--only", f"{KEY},coreml-fp16", "--json", report)
    checks = {c["name"]: c for b in json.loads(report.read_text())["bundles"] for c in b["checks"]}
    check = checks[f"pipeline/{KEY}+coreml-fp16[logits]"]
    assert code == 0, out + err
    assert check["status"] == "pass" and check["details"]["targets"] == ["app"], check


def test_ranges_or_missing_sizes_in_place_of_the_enumerated_shapes_fail(bundles):
    """The structure check compares the enumerated shapes with the contract's, and refuses ranges."""
    import coremltools as ct

    from verify.checks.coreml_structure import check_coreml_structure

    path = str(bundles / "encoder_v1" / ARTIFACT.filename)
    assert not check_coreml_structure(KEY, ENCODER_V1, ct.utils.load_spec(path)).failed
    ranged = ct.utils.load_spec(path)
    array = ranged.description.input[0].type.multiArrayType
    array.ClearField("enumeratedShapes")
    for low, high in ((1, 1), (16, 256)):
        array.shapeRange.sizeRanges.add(lowerBound=low, upperBound=high)
    result = check_coreml_structure(KEY, ENCODER_V1, ranged)
    assert (
        result.failed
        and "flexible ranges, the contract enumerates 1 x {16, 32, 64, 128, 256}" in result.message
    )
    fewer = ct.utils.load_spec(path)
    del fewer.description.input[0].type.multiArrayType.enumeratedShapes.shapes[0]
    result = check_coreml_structure(KEY, ENCODER_V1, fewer)
    assert result.failed and "enumerated shapes 1x32, 1x64, 1x128, 1x256 != contract" in result.message
