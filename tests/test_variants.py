"""Quantized variants: each variant's check catches a deliberately degraded artifact."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from tests.helpers import rehash_manifest
from tests.test_verify import verify_fails_with
from verify.selftest.mutants import edit_onnx_initializer

pytestmark = pytest.mark.slow


def test_per_tensor_int8_coreml_encoder_is_caught(copy_bundle, capsys, tmp_path):
    import coremltools as ct
    from coremltools.optimize.coreml import (
        OpLinearQuantizerConfig,
        OptimizationConfig,
        linear_quantize_weights,
    )

    bundle = copy_bundle("encoder_v1")
    target = bundle / "encoder_v1.int8.mlpackage"
    source = ct.models.MLModel(str(bundle / "encoder_v1.fp16.mlpackage"), skip_model_load=True)
    config = OptimizationConfig(
        global_config=OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_tensor")
    )
    shutil.rmtree(target)
    linear_quantize_weights(source, config).save(str(target))
    rehash_manifest(bundle)
    failures = verify_fails_with(
        capsys, tmp_path, bundle, "coreml-int8/numerics[embedding]", "--only", "coreml-int8"
    )
    assert "coreml-int8/structure" not in failures


def test_default_dynamic_int8_onnx_encoder_is_caught(copy_bundle, capsys, tmp_path):
    from onnxruntime.quantization import quantize_dynamic

    bundle = copy_bundle("encoder_v1")
    target = bundle / "encoder_v1.int8.onnx"
    quantize_dynamic(str(bundle / "encoder_v1.fp32.onnx"), str(target))
    model = onnx.load(str(target))
    source = onnx.load(str(bundle / "encoder_v1.fp32.onnx"), load_external_data=False)
    onnx.helper.set_model_props(model, {p.key: p.value for p in source.metadata_props})
    onnx.save(model, str(target))
    rehash_manifest(bundle)
    verify_fails_with(capsys, tmp_path, bundle, "onnx-int8/numerics[embedding]", "--only", "onnx-int8")


def test_fp16_onnx_with_one_weight_perturbed_is_caught(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")

    def nudge(values):
        values[3] += np.float16(0.5)
        return values

    edit_onnx_initializer(bundle / "personality_v1.fp16.onnx", "output_bias", nudge)
    rehash_manifest(bundle)
    verify_fails_with(capsys, tmp_path, bundle, "onnx-fp16/numerics[logits]", "--only", "onnx-fp16")


def test_int8_over_its_size_budget_is_caught(copy_bundle, capsys, tmp_path):
    bundle = copy_bundle("personality_v1")
    shutil.rmtree(bundle / "personality_v1.int8.mlpackage")
    shutil.copytree(bundle / "personality_v1.fp16.mlpackage", bundle / "personality_v1.int8.mlpackage")
    rehash_manifest(bundle)
    verify_fails_with(capsys, tmp_path, bundle, "coreml-int8/size", "--only", "coreml-int8", "--no-numerics")
