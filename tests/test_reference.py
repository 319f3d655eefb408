"""The PyTorch reference: real MiniLM, strict weights, the spec's PersonalityModel."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from reference import PersonalityModel, ReferenceInputError, load_personality, load_tokens
from reference.encoder import MINILM_SHA256, ProjectionHead, check_minilm, load_encoder, minilm_dir
from reference.tokens import validate_tokens
from reference.weights import demo_state_dict, load_strict

TEXTS = ["The quick brown fox.", "", "Ich bin müde 😴", "这是一个测试", "a " * 400]


def test_pooling_equals_sentence_transformers(encoder):
    from sentence_transformers import SentenceTransformer

    expected = SentenceTransformer(str(minilm_dir()), device="cpu").encode(TEXTS, convert_to_numpy=True)
    with torch.no_grad():
        sentence_embedding, embedding = encoder.model(**encoder.tokenize(TEXTS))
    assert np.abs(sentence_embedding.numpy() - expected).max() <= 1e-6
    assert embedding.shape == (len(TEXTS), 1536)
    assert np.allclose(embedding.norm(dim=1).numpy(), 1.0, atol=1e-6)


def test_tokenizer_truncates_at_256(encoder):
    batch = encoder.tokenize(["word " * 1000])
    assert batch["input_ids"].shape == (1, 256) and batch["input_ids"].dtype == torch.int32


def test_padding_does_not_move_the_embedding(encoder):
    alone = encoder.tokenize(["short text"])
    padded = encoder.tokenize(["short text", "a much longer text " * 10])
    with torch.no_grad():
        a = encoder.model(**alone)[1]
        b = encoder.model(**padded)[1][:1]
    assert (a - b).abs().max() < 1e-6


def test_minilm_with_another_sha_is_refused(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"not the published weights")
    with pytest.raises(ReferenceInputError, match=MINILM_SHA256):
        check_minilm(tmp_path)
    with pytest.raises(ReferenceInputError, match="not found"):
        check_minilm(tmp_path / "empty")


def test_personality_parameter_names_follow_the_contract():
    names = [n for n, _ in PersonalityModel().named_parameters()]
    assert "projection.weight" in names and "output_bias" in names
    assert "projection.bias" not in names
    assert {n.split(".")[0] for n in names} == {
        "input_projection",
        "encoder_layers",
        "projection",
        "output_bias",
    }
    assert {n.split(".")[1] for n in names if n.startswith("encoder_layers")} == {"0", "1"}
    shapes = dict(PersonalityModel().named_parameters())
    assert tuple(shapes["projection.weight"].shape) == (325, 512)
    assert tuple(shapes["encoder_layers.0.linear1.weight"].shape) == (2048, 512)


def test_dropout_only_in_train_mode():
    model = load_personality().model
    x = torch.nn.functional.normalize(torch.randn(4, 1536), dim=1)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), model(x))
        assert not torch.equal(model.train()(x), model.eval()(x))


def test_demo_weights_are_deterministic_and_seeded():
    a, b = demo_state_dict(PersonalityModel(), 0), demo_state_dict(PersonalityModel(), 0)
    c = demo_state_dict(PersonalityModel(), 1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["projection.weight"], c["projection.weight"])
    assert load_personality().provenance.describe().startswith("demo weights (seed 0")


def test_strict_loading_lists_every_problem(tmp_path):
    state = {k: v.clone() for k, v in PersonalityModel().state_dict().items()}
    del state["output_bias"]
    state["extra.weight"] = torch.zeros(3)
    state["projection.weight"] = torch.zeros(325, 511)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(ReferenceInputError) as info:
        load_strict(PersonalityModel(), path, "PersonalityModel")
    message = str(info.value)
    assert "missing [output_bias]" in message and "unexpected [extra.weight]" in message
    assert "projection.weight (325, 511) != (325, 512)" in message


def test_strict_loading_accepts_an_exact_file(tmp_path):
    state = demo_state_dict(ProjectionHead(), 7)
    path = tmp_path / "head.safetensors"
    save_file(state, str(path))
    head = ProjectionHead()
    provenance = load_strict(head, path, "head")
    assert provenance.kind == "file" and torch.equal(head.projection.weight, state["projection.weight"])


def test_corrupt_weights_file_is_refused(tmp_path):
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(b"\x00" * 16)
    with pytest.raises(ReferenceInputError, match="not a readable safetensors"):
        load_strict(ProjectionHead(), path, "head")


def test_encoder_head_weights_from_file(tmp_path):
    state = demo_state_dict(ProjectionHead(), 3)
    path = tmp_path / "head.safetensors"
    save_file(state, str(path))
    loaded = load_encoder(path)
    assert loaded.head_provenance.kind == "file"
    assert loaded.fingerprint != load_encoder().fingerprint


def test_default_tokens_are_valid():
    tokens = load_tokens()
    assert len(tokens) == 325 and len(set(tokens)) == 325


@pytest.mark.parametrize(
    "tokens, message",
    [
        (["a"] * 325, "duplicate"),
        ([f"t{i}" for i in range(324)], "324 tokens"),
        ([f"t{i}" for i in range(324)] + [""], "empty"),
        ([f"t{i}" for i in range(324)] + ["a,b"], "commas"),
        ({"not": "a list"}, "JSON array"),
    ],
)
def test_bad_token_lists_are_refused(tokens, message, tmp_path):
    with pytest.raises(ReferenceInputError, match=message):
        validate_tokens(tokens)
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(tokens))
    with pytest.raises(ReferenceInputError, match=message):
        load_tokens(path)


def test_minilm_dir_holds_the_pinned_file():
    assert check_minilm(minilm_dir()) == MINILM_SHA256
