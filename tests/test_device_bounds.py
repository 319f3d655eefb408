"""Issue 16, item 2: bounds per Core ML compute unit setting, derived from the emulation's measured
error with a stated margin until the macOS matrix has measured them, and every numerics result
naming the hardware it was computed on."""

from __future__ import annotations

import json

import pytest

from contracts import REGISTRY
from contracts.device import DECIBELS, MARGINS, UNIT_IDEAL, widened
from contracts.schema import Bound
from verify.backends.runners import COMPUTE_UNITS
from verify.checks.numerics import compute_unit_of
from verify.compare import METRICS


def test_the_margin_table_knows_every_metric_direction():
    better_higher = {name for name, metric in METRICS.items() if metric.direction == ">="}
    assert better_higher == UNIT_IDEAL | DECIBELS
    assert set(MARGINS) == set(COMPUTE_UNITS)


@pytest.mark.parametrize("key", ["coreml-fp16", "coreml-int8"])
def test_device_bounds_are_looser_than_the_emulations_by_their_margin(key):
    for contract in REGISTRY.values():
        artifact = contract.artifact(key)
        for unit, factor in MARGINS.items():
            device = artifact.bounds_on(unit)
            assert device is not None and not device.measured_on_device and f"x{factor:g}" in device.basis
            for emulated, on_device in zip(artifact.tolerances, device.tolerances, strict=True):
                for before, after in zip(emulated.bounds, on_device.bounds, strict=True):
                    assert after.metric == before.metric and after.measured == before.measured
                    looser = (
                        after.limit >= before.limit
                        if METRICS[before.metric].direction == "<="
                        else (after.limit <= before.limit)
                    )
                    assert looser, (contract.name, key, unit, before, after)


def test_a_bound_widens_its_measured_error():
    assert widened(Bound("max_abs", 1e-3, 4e-4), 8).limit == pytest.approx(3.2e-3)
    assert widened(Bound("min_cosine", 0.99999, 0.999995), 8).limit == pytest.approx(0.99996)
    assert widened(Bound("min_cosine", 0.9999, 0.99999), 8).limit == pytest.approx(0.9999)  # never tighter
    assert widened(Bound("snr_db", 30, 50), 10).limit == pytest.approx(30)  # never tighter
    assert widened(Bound("snr_db", 30, 45), 10).limit == pytest.approx(25)
    assert widened(Bound("max_abs", 1e-3, None), 8).limit == 1e-3  # nothing measured: kept


def test_fp32_and_onnx_artifacts_have_no_device_bounds():
    for contract in REGISTRY.values():
        for artifact in contract.artifacts:
            if artifact.format == "onnx" or artifact.precision == "fp32":
                assert artifact.device_bounds == ()
            else:
                assert {d.compute_units for d in artifact.device_bounds} == set(COMPUTE_UNITS), artifact.key


def test_compute_units_are_named_from_the_backend():
    assert compute_unit_of("Core ML runtime (CPU_AND_NE)") == "CPU_AND_NE"
    assert compute_unit_of("Core ML runtime (ALL) (stored)") == "ALL"
    assert compute_unit_of("MIL executor (numpy)").startswith("CPU, emulating Core ML")
    assert compute_unit_of("onnxruntime 1.32.0 CPU") == "CPU"


def test_every_numerics_result_names_its_compute_unit(reports):
    _, _, files = reports
    report = json.loads(files["json"].read_text())
    numerics = [c for b in report["bundles"] for c in b["checks"] if "/numerics[" in c["name"]]
    assert numerics and all(c["details"]["compute_unit"] for c in numerics)
    coreml = {c["details"]["compute_unit"] for c in numerics if c["name"].startswith("coreml-")}
    assert coreml == {"CPU, emulating Core ML (fp16 storage, fp32 arithmetic)"}  # Linux: no runtime


def test_every_coreml_artifact_reports_its_shape_strategy_and_hint(reports):
    """Issue 16, item 3: the static shape-strategy check names range shapes and the runtime hint
    (reshapeFrequency = .infrequent) the app must set to keep the Neural Engine."""
    _, _, files = reports
    report = json.loads(files["json"].read_text())
    strategies = [c for b in report["bundles"] for c in b["checks"] if c["name"].endswith("/shape-strategy")]
    assert len(strategies) == 7  # three Core ML precisions in each bundle, and the enumerated encoder
    for check in strategies:
        enumerated = check["name"].startswith("coreml-fp16-enumerated/")
        assert check["status"] == "pass", check
        assert check["details"]["strategy"] == ("enumerated" if enumerated else "range"), check
        hint = "pad every input" if enumerated else "reshapeFrequency = .infrequent"
        assert hint in check["details"]["runtime_hint"]


def test_a_shape_strategy_other_than_the_contracts_fails(copy_bundle, capsys, tmp_path):
    """The fp16 encoder's inputs turned into enumerated shapes: reported as such, and failed."""
    from tests.helpers import rehash_manifest, run_verify
    from verify.selftest.mutants import edit_coreml_spec

    def enumerate_shapes(spec) -> None:
        for feature in spec.description.input:
            array = feature.type.multiArrayType
            array.ClearField("shapeRange")
            for length in (16, 32):
                array.enumeratedShapes.shapes.add().shape.extend([1, length])

    bundle = copy_bundle("encoder_v1")
    edit_coreml_spec(bundle / "encoder_v1.fp16.mlpackage", enumerate_shapes)
    rehash_manifest(bundle, contents=True)
    report = tmp_path / "r.json"
    code, out, _ = run_verify(capsys, bundle, "--only", "coreml-fp16", "--no-numerics", "--json", report)
    assert code == 1, out[-2000:]
    checks = {c["name"]: c for c in json.loads(report.read_text())["bundles"][0]["checks"]}
    strategy = checks["coreml-fp16/shape-strategy"]
    assert (
        strategy["status"] == "fail" and "enumerated shapes, the contract states range" in strategy["message"]
    )
    assert strategy["details"]["shapes"]["input_ids"] == "1x16, 1x32"


def _placed(*devices_and_costs: tuple[str, float | None]):
    from verify.backends.macos.compute_plan import PlacedOp

    return [PlacedOp("linear", device, cost) for device, cost in devices_and_costs]


def test_the_neural_engine_share_is_counted_by_ops_and_by_cost():
    from verify.backends.macos.compute_plan import neural_engine_share

    ops = _placed(("neural_engine", 0.6), ("cpu", 0.3), ("gpu", 0.1), ("neural_engine", None))
    assert neural_engine_share(ops) == (0.5, pytest.approx(0.6))
    assert neural_engine_share([]) == (0.0, 0.0)


def test_a_neural_engine_share_below_the_contracts_floor_fails():
    """MLComputePlan runs on macOS 14.4+ only; the judgement of its placements runs here."""
    from dataclasses import replace

    from verify.checks.neural_engine import judge_neural_engine

    artifact = REGISTRY["encoder_v1"].artifact("coreml-fp16")
    ops = _placed(("neural_engine", 0.2), ("cpu", 0.8))
    unset = judge_neural_engine("coreml-fp16/neural-engine", artifact, ops, "ALL")
    assert unset.status == "pass" and "states no floor yet" in unset.message
    gated = replace(artifact, min_neural_engine_share=0.9)
    low = judge_neural_engine("coreml-fp16/neural-engine", gated, ops, "ALL")
    assert (
        low.status == "fail"
        and "20% of the estimated cost" in low.message
        and "below the contract's 90%" in low.message
    )
    high = judge_neural_engine("coreml-fp16/neural-engine", gated, _placed(("neural_engine", 1.0)), "ALL")
    assert high.status == "pass"
