"""Runner selection and the contract checks every runner applies to its inputs."""

from __future__ import annotations

import numpy as np
import pytest

from contracts import ENCODER_V1, PERSONALITY_V1
from verify.backends.runners import InputContractError, check_inputs, coreml_backend, native_coreml_available


def test_mil_executor_where_the_runtime_is_absent():
    assert coreml_backend(None, native_available=False) == "mil"


def test_real_runtime_on_macos_defaults_to_cpu_only():
    assert coreml_backend(None, native_available=True) == "CPU_ONLY"
    assert coreml_backend("CPU_AND_NE", native_available=True) == "CPU_AND_NE"


def test_compute_units_without_the_runtime_is_an_error_not_a_fallback():
    with pytest.raises(ValueError, match="needs the Core ML runtime"):
        coreml_backend("ALL", native_available=False)
    with pytest.raises(ValueError, match="not one of"):
        coreml_backend("GPU_ONLY", native_available=True)


def test_linux_has_no_native_runtime():
    import platform

    if platform.system() != "Darwin":
        assert native_coreml_available() is False


def test_cli_refuses_compute_units_on_linux(capsys):
    from verify.cli import main

    if native_coreml_available():
        pytest.skip("the Core ML runtime is present")
    assert main(["/does/not/matter", "--compute-units", "ALL"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs the Core ML runtime" in err


@pytest.mark.parametrize("batch", [0, 65])
def test_batch_outside_the_contract_is_refused(batch):
    inputs = {"embedding": np.zeros((batch, 1536), np.float32)}
    with pytest.raises(InputContractError, match="outside the contract range 1..64"):
        check_inputs(PERSONALITY_V1, inputs)


def test_wrong_dtype_and_names_are_refused():
    with pytest.raises(InputContractError, match="dtype"):
        check_inputs(PERSONALITY_V1, {"embedding": np.zeros((2, 1536), np.float64)})
    with pytest.raises(InputContractError, match="inputs"):
        check_inputs(ENCODER_V1, {"input_ids": np.zeros((2, 5), np.int32)})
    with pytest.raises(InputContractError, match="sequence 257"):
        ids = np.ones((1, 257), np.int32)
        check_inputs(ENCODER_V1, {"input_ids": ids, "attention_mask": ids})


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("input_ids", 30522, "input_ids: values 0..30522 outside the contract range 0..30521"),
        ("input_ids", -1, "input_ids: values -1..102 outside the contract range 0..30521"),
        ("attention_mask", 2, "attention_mask: values 0..2 outside the contract range 0..1"),
    ],
    ids=["id-beyond-vocabulary", "negative-id", "mask-of-2"],
)
def test_token_values_outside_the_contract_are_refused(name, value, message):
    """onnxruntime would read a negative id from the end of the embedding table."""
    ids = np.array([[101, 2023, 102, 0]], dtype=np.int32)
    inputs = {"input_ids": ids, "attention_mask": (ids > 0).astype(np.int32)}
    inputs[name][0, 1] = value
    with pytest.raises(InputContractError, match=message.replace("..", r"\.\.")):
        check_inputs(ENCODER_V1, inputs)
