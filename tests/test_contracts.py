import json

import pytest

from contracts import (
    CONTRACT_FORMAT,
    ENCODER_V1,
    PERSONALITY_V1,
    REGISTRY,
    Contract,
    ContractError,
    get_contract,
    resolve_metadata,
)


@pytest.mark.parametrize("contract", REGISTRY.values(), ids=REGISTRY)
def test_json_round_trip(contract):
    assert Contract.from_json(contract.to_json()) == contract
    assert Contract.from_dict(json.loads(contract.to_json())) == contract


def test_contract_values_match_the_spec():
    assert [i.name for i in ENCODER_V1.inputs] == ["input_ids", "attention_mask"]
    assert (ENCODER_V1.batch.lower, ENCODER_V1.batch.upper) == (1, 64)
    assert ENCODER_V1.inputs[0].shape[1].upper == 256
    assert ENCODER_V1.output("embedding").shape[1].lower == 1536
    assert PERSONALITY_V1.output("logits").shape[1].lower == 325
    assert PERSONALITY_V1.updatable == ("projection.weight", "output_bias")
    assert {c.coreml.spec_version for c in REGISTRY.values()} == {8}
    assert all(c.onnx.min_opset >= 17 for c in REGISTRY.values())
    for contract in REGISTRY.values():
        for artifact in contract.artifacts:
            for output in contract.outputs:
                assert artifact.tolerance_for(output.name), (artifact.key, output.name)


def test_newer_contract_format_refused():
    data = ENCODER_V1.to_dict() | {"contract_format": CONTRACT_FORMAT + 1}
    with pytest.raises(ContractError, match="upgrade coreml-contract"):
        Contract.from_dict(data)


@pytest.mark.parametrize("text", ["[]", "{", '{"contract_format": 1}'])
def test_malformed_contract_refused(text):
    with pytest.raises(ContractError):
        Contract.from_json(text)


def test_unknown_contract_name():
    with pytest.raises(ContractError, match="unknown contract"):
        get_contract("encoder_v2")


def test_metadata_resolution_needs_every_fact():
    facts = {"tokens": "a,b", "weights_provenance": "p", "encoder_fingerprint": "f"}
    resolved = resolve_metadata(PERSONALITY_V1, facts)
    assert resolved["vocab_size"] == "325" and resolved["embedding_dim"] == "1536"
    assert resolved["tokens"] == "a,b"
    with pytest.raises(ContractError, match="tokens"):
        resolve_metadata(PERSONALITY_V1, {"weights_provenance": "p", "encoder_fingerprint": "f"})
