"""Property-based shape fuzzing of every artifact and backend (``pytest -k fuzz``; docs/FUZZING.md).

Each property runs on every artifact the contracts list, plus the updatable pipeline, through the
toolkit's own runners: onnxruntime for ONNX, the MIL executor (or Core ML on macOS) for Core ML.
Sizes come from the contracts, never from constants. The MIL executor is slow on the encoder
(fp16 emulation: about 3 ms a token), so most encoder examples are short; explicit ``@example``
cases always cover the bounds themselves.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import example, given, settings, target
from hypothesis import strategies as st

from contracts import ENCODER_V1, PERSONALITY_V1, ArtifactSpec, Contract
from contracts import strategies as cst
from contracts.schema import UPDATABLE_KEY
from contracts.strategies import TokenLayout, float_rows
from verify.backends.runners import InputContractError, Runner
from verify.compare import METRICS, budget_used, within

ENCODER, PERSONALITY = ENCODER_V1, PERSONALITY_V1
ENC_BATCH, PM_BATCH = ENCODER.batch, PERSONALITY.batch
SEQUENCE = cst.contract_dim(ENCODER, "sequence")
PM_INPUT = PERSONALITY.inputs[0]
PM_WIDTH = PM_INPUT.shape[1].lower


def examples(factor: float) -> int:
    """``factor`` x the active profile's max_examples (cheap properties get more)."""
    return max(1, round(settings.default.max_examples * factor))


#: Cost caps for the encoder (the sequence bounds themselves are covered by explicit examples).
SHORT = 4  # tokens per row where the property is about the batch
MEDIUM = 24  # tokens per row for invariance properties
SMALL_BATCH = 16
#: Share of the profile's max_examples for the encoder (each example costs up to ~1 s in the
#: fp16 MIL executor) and for the PersonalityModel (a few ms an example).
ENCODER_EXAMPLES = examples(0.6)
PERSONALITY_EXAMPLES = examples(2)

#: Metrics that compare row by row. flip_rate and top10_overlap are statistics over the 46,800
#: golden decisions: on a handful of rows one flipped decision is already 1/325 = 0.3 %, so they
#: say nothing about invariance and are not used here.
ROWWISE = frozenset({"max_abs", "p99_abs", "min_cosine", "mean_cosine", "sigmoid_max_abs"})

#: |L2 norm - 1| allowed on unit_norm outputs, by the precision the artifact computes in (ONNX int8
#: dequantizes into fp32 and normalizes in fp32). fp32: ~4x the typical rounding of a 1536-term
#: fp32 sum (sqrt(n) * 2^-24 = 2.3e-6); fp16: ~4x the fp16 unit roundoff 2^-11 = 4.9e-4, since
#: every element of the output was rounded to fp16. Measured maxima are in docs/FUZZING.md.
UNIT_NORM_TOLERANCE = {"fp32": 1e-5, "fp16": 2e-3}


def artifact_keys(contract: Contract) -> list[str]:
    return [a.key for a in contract.artifacts] + ([UPDATABLE_KEY] if contract.training else [])


def artifact_spec(contract: Contract, key: str) -> ArtifactSpec:
    if key == UPDATABLE_KEY:
        from verify.checks.updatable import updatable_artifact

        return updatable_artifact(contract.training)
    return contract.artifact(key)


def compute_precision(artifact: ArtifactSpec) -> str:
    return "fp16" if (artifact.compute_precision or artifact.precision) == "fp16" else "fp32"


def _make_runner(contract: Contract, key: str, bundle) -> Runner:
    from verify.backends.runners import (
        NativeCoreMLRunner,
        artifact_runner,
        coreml_backend,
        native_coreml_available,
    )

    if key == UPDATABLE_KEY:
        from verify.backends.head import PipelineMILRunner

        path = bundle / contract.training.filename
        backend = coreml_backend(None, native_coreml_available())
        return PipelineMILRunner(contract, path) if backend == "mil" else NativeCoreMLRunner(contract, path)
    artifact = contract.artifact(key)
    path = bundle / artifact.filename
    return artifact_runner(contract, artifact, path)


@pytest.fixture(scope="session")
def runner(bundles):
    """``runner(contract, key)``: one runner per artifact, built on first use, kept for the session."""
    cache: dict[tuple[str, str], Runner] = {}

    def get(contract: Contract, key: str) -> Runner:
        if (contract.name, key) not in cache:
            cache[contract.name, key] = _make_runner(contract, key, bundles / contract.name)
        return cache[contract.name, key]

    return get


@pytest.fixture(scope="session")
def vocab(bundles) -> cst.Vocabulary:
    return cst.Vocabulary.from_tokenizer_dir(bundles / ENCODER.name / "tokenizer")


@pytest.fixture(scope="session")
def tokenizer(bundles):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(bundles / ENCODER.name / "tokenizer"))


@pytest.fixture(scope="session")
def personality_reference():
    """The torch PersonalityModel the default bundle was built from (demo weights, seed 0)."""
    import torch

    from reference.personality import load_personality

    model = load_personality().model

    def run(embedding: np.ndarray) -> np.ndarray:
        # One thread: tiny ops on two shared cores spend ~7 ms each waking a second thread.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                return model(torch.from_numpy(embedding)).numpy()
        finally:
            torch.set_num_threads(threads)

    return run


# --- shared assertions -----------------------------------------------------------------------


def check_outputs(contract: Contract, artifact: ArtifactSpec, outputs: dict, batch: int) -> dict[str, float]:
    """Every contract output has shape (batch, fixed dims), the contract dtype, finite values, and
    unit-norm rows where the contract says so. Returns the worst norm error per unit_norm output."""
    norm_errors = {}
    for spec in contract.outputs:
        value = outputs[spec.name]
        shape = (batch, *(d.lower for d in spec.shape[1:]))
        assert value.shape == shape, f"{spec.name}: shape {value.shape} != {shape}"
        assert value.dtype == np.dtype(spec.dtype), f"{spec.name}: dtype {value.dtype} != {spec.dtype}"
        assert np.isfinite(value).all(), f"{spec.name}: NaN or Inf in output"
        if spec.unit_norm:
            error = float(np.abs(np.linalg.norm(value.astype(np.float64), axis=1) - 1.0).max())
            tolerance = UNIT_NORM_TOLERANCE[compute_precision(artifact)]
            assert error <= tolerance, f"{spec.name}: |norm - 1| = {error:.3g} > {tolerance:g}"
            norm_errors[f"{spec.name} |norm - 1|"] = error
    return norm_errors


def compare_rows(artifact: ArtifactSpec, actual: dict, expected: dict, what: str) -> dict[str, float]:
    """Hold ``actual`` to ``expected`` with the artifact's row-wise contract bounds, per output.
    Returns, per output and metric, the share of the bound's budget used (1.0 = at the limit)."""
    used = {}
    for name, reference in expected.items():
        tolerance = artifact.tolerance_for(name)
        bounds = [b for b in (tolerance.bounds if tolerance else ()) if b.metric in ROWWISE]
        assert bounds, f"{artifact.key}: the contract sets no row-wise bound for {name}"
        for bound in bounds:
            value = METRICS[bound.metric].compute(actual[name], reference)
            assert within(bound, value), (
                f"{what}: {name} {bound.metric} {value:.3g} beyond "
                f"{METRICS[bound.metric].direction} {bound.limit:g}"
            )
            used[f"{name} {bound.metric} budget used"] = budget_used(bound, value)
    return used


def rows_match_alone(artifact: ArtifactSpec, batched: dict, alone: dict[int, dict]) -> dict[str, float]:
    """Row i of ``batched`` against ``alone[i]`` (row i run by itself); the worst budget per label."""
    used: dict[str, float] = {}
    for i in sorted(alone):
        for label, value in compare_rows(artifact, rows(batched, [i]), alone[i], f"row {i}").items():
            used[label] = max(used.get(label, 0.0), value)
    return used


def report(scores: dict[str, float]) -> None:
    """Feed the measured values to hypothesis' targeting: the deep profile searches towards the
    worst case, and ``--hypothesis-show-statistics`` prints the highest value seen per label."""
    for label, value in scores.items():
        target(float(value), label=label)


def rows(arrays: dict[str, np.ndarray], index: list[int] | slice) -> dict[str, np.ndarray]:
    return {k: v[index] for k, v in arrays.items()}


def layout_arrays(layout: TokenLayout, vocab: cst.Vocabulary) -> dict[str, np.ndarray]:
    return layout.arrays(ENCODER, vocab)


def refusal(spec_name: str, dim, size: int) -> str:
    return rf"^{spec_name}: {dim.name} {size} outside the contract range {dim.lower}\.\.{dim.upper}$"


ENCODER_KEYS = artifact_keys(ENCODER)
PERSONALITY_KEYS = artifact_keys(PERSONALITY)
#: Mixed row lengths 1..4 ([CLS] alone up to [CLS] x x [SEP]) at the batch upper bound.
UPPER_BATCH_LAYOUT = TokenLayout(tuple(1 + i % 4 for i in range(ENC_BATCH.upper)), 4)


# --- the strategies themselves (no model run) ---------------------------------------------------

#: A made-up vocabulary: the strategies must not assume BERT's ids.
TOY_VOCAB = cst.Vocabulary(size=1000, cls_id=7, sep_id=8, pad_id=3)


@given(layout=cst.token_layouts(ENCODER), extra=st.integers(0, SHORT))
def test_fuzz_token_layouts_are_realistic(layout, extra):
    """[CLS] first, [SEP] after the last real token, [PAD] after, mask 1 exactly on the real
    tokens, body ids inside the vocabulary and never special; rows do not depend on the batch."""
    arrays = layout.arrays(ENCODER, TOY_VOCAB)
    ids, mask = arrays["input_ids"], arrays["attention_mask"]
    assert ids.dtype == np.dtype(ENCODER.input("input_ids").dtype) and ids.shape == mask.shape
    assert ENC_BATCH.accepts(ids.shape[0]) and SEQUENCE.accepts(ids.shape[1])
    for row, length in enumerate(layout.lengths):
        assert mask[row].tolist() == [1] * length + [0] * (layout.sequence - length)
        assert ids[row, 0] == TOY_VOCAB.cls_id and (ids[row, length:] == TOY_VOCAB.pad_id).all()
        body = ids[row, 1 : length - 1]
        assert length < 2 or ids[row, length - 1] == TOY_VOCAB.sep_id
        assert ((body >= 0) & (body < TOY_VOCAB.size)).all()
        assert not np.isin(body, list(TOY_VOCAB.special_ids)).any()
        alone = layout.row(row).arrays(ENCODER, TOY_VOCAB)
        assert (alone["input_ids"][0] == ids[row]).all()
    padded = layout.padded(extra).arrays(ENCODER, TOY_VOCAB)["input_ids"]
    assert (padded[:, : layout.sequence] == ids).all()
    assert (padded[:, layout.sequence :] == TOY_VOCAB.pad_id).all()


@given(
    batch=cst.invalid_batch_sizes(ENCODER),
    sequence=cst.out_of_range_sizes(SEQUENCE),
    ok_batch=cst.batch_sizes(ENCODER),
    ok_sequence=cst.sequence_lengths(ENCODER),
)
def test_fuzz_size_strategies_respect_the_contract(batch, sequence, ok_batch, ok_sequence):
    assert not ENC_BATCH.accepts(batch) and batch >= 0
    assert not SEQUENCE.accepts(sequence) and sequence >= 0
    assert ENC_BATCH.accepts(ok_batch) and SEQUENCE.accepts(ok_sequence)


@given(inputs=cst.float_batches(PERSONALITY, kind=st.sampled_from(cst.FLOAT_KINDS), norms=(0.5, 2.0)))
def test_fuzz_float_batches_are_what_they_say(inputs):
    array = inputs[PM_INPUT.name]
    assert array.dtype == np.dtype(PM_INPUT.dtype) and PM_BATCH.accepts(len(array))
    assert array.shape[1:] == tuple(d.lower for d in PM_INPUT.shape[1:])
    finite = np.isfinite(array).all(axis=1)
    norms = np.linalg.norm(array[finite].astype(np.float64), axis=1)
    if finite.all() and not array.any():
        return  # zeros
    if finite.all():
        assert ((np.abs(norms - 1) < 1e-6) | ((norms > 0.5 - 1e-6) & (norms < 2 + 1e-5))).all()
    else:
        assert 1 <= (~finite).sum() <= 3 and (np.abs(norms - 1) < 1e-6).all()


# --- encoder_v1 --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ENCODER_KEYS)
@settings(max_examples=ENCODER_EXAMPLES)
@given(layout=cst.token_layouts(ENCODER, max_sequence=SHORT))
@example(layout=TokenLayout.full(ENC_BATCH.lower, 2))
@example(layout=UPPER_BATCH_LAYOUT)
def test_fuzz_encoder_every_batch_size_is_accepted(key, layout, runner, vocab):
    outputs = runner(ENCODER, key).run(layout_arrays(layout, vocab))
    report(check_outputs(ENCODER, artifact_spec(ENCODER, key), outputs, layout.batch))


@pytest.mark.parametrize("key", ENCODER_KEYS)
@settings(max_examples=ENCODER_EXAMPLES)
@given(layout=cst.token_layouts(ENCODER, max_batch=1))
@example(layout=TokenLayout.full(1, SEQUENCE.upper))
@example(layout=TokenLayout.full(2, SEQUENCE.lower))
def test_fuzz_encoder_every_sequence_length_is_accepted(key, layout, runner, vocab):
    outputs = runner(ENCODER, key).run(layout_arrays(layout, vocab))
    report(check_outputs(ENCODER, artifact_spec(ENCODER, key), outputs, layout.batch))


@pytest.mark.parametrize("key", ENCODER_KEYS)
@settings(max_examples=ENCODER_EXAMPLES)
@given(
    layout=cst.token_layouts(
        ENCODER, batch=st.integers(max(2, ENC_BATCH.lower), SMALL_BATCH), max_sequence=MEDIUM
    ),
    picks=st.lists(st.integers(0, ENC_BATCH.upper - 1), min_size=1, max_size=3, unique=True),
)
@example(layout=UPPER_BATCH_LAYOUT, picks=[0, 1, ENC_BATCH.upper - 1])
def test_fuzz_encoder_batch_invariance(key, layout, picks, runner, vocab):
    """Row i of a batch equals row i run alone (same padded length), within the contract bounds."""
    run = runner(ENCODER, key).run
    batched = run(layout_arrays(layout, vocab))
    alone = {i: run(layout_arrays(layout.row(i), vocab)) for i in {p % layout.batch for p in picks}}
    report(rows_match_alone(artifact_spec(ENCODER, key), batched, alone))


INVARIANT_KEYS = [a.key for a in ENCODER.artifacts if a.batch_invariance is not None]


@pytest.mark.parametrize("key", INVARIANT_KEYS)
@settings(max_examples=ENCODER_EXAMPLES)
@given(
    layout=cst.token_layouts(
        ENCODER, batch=st.integers(max(2, ENC_BATCH.lower), SMALL_BATCH), max_sequence=MEDIUM
    ),
    extra=st.integers(0, 24),
)
@example(layout=UPPER_BATCH_LAYOUT, extra=0)
def test_fuzz_encoder_batch_invariance_bound(key, layout, extra, runner, vocab):
    """The contract's batch_invariance bound (issue 17): every row of a batch, whatever its
    batch-mates and however much padding they bring, against that row alone and unpadded."""
    artifact, run = artifact_spec(ENCODER, key), runner(ENCODER, key).run
    bound = artifact.batch_invariance
    assert bound is not None
    batched = run(layout_arrays(layout.padded(extra), vocab))
    worst = {}
    for i in range(layout.batch):
        alone = run(layout_arrays(layout.row(i).trimmed(), vocab))
        for name, value in alone.items():
            measured = METRICS[bound.metric].compute(batched[name][i : i + 1], value)
            assert within(bound, measured), (
                f"row {i}: {name} {bound.metric} {measured:.8g} beyond {bound.limit:g}"
            )
            worst[f"{name} batch invariance budget used"] = max(
                worst.get(f"{name} batch invariance budget used", 0.0), budget_used(bound, measured)
            )
    report(worst)


@pytest.mark.parametrize("key", ENCODER_KEYS)
@settings(max_examples=ENCODER_EXAMPLES)
@given(
    layout=cst.token_layouts(ENCODER, max_batch=3, max_sequence=MEDIUM),
    extra=st.integers(1, 16),
    to_upper=st.booleans(),
)
@example(layout=TokenLayout((1, 5), 5), extra=1, to_upper=True)
def test_fuzz_encoder_padding_invariance(key, layout, extra, to_upper, runner, vocab):
    """More padding (mask 0) after the longest row moves no embedding beyond the contract bounds;
    ``to_upper`` pads to the contract's longest sequence."""
    artifact, run = artifact_spec(ENCODER, key), runner(ENCODER, key).run
    tight = layout.trimmed()
    extra = SEQUENCE.upper - tight.sequence if to_upper else min(extra, SEQUENCE.upper - tight.sequence)
    if extra <= 0:
        return
    expected = run(layout_arrays(tight, vocab))
    padded = run(layout_arrays(tight.padded(extra), vocab))
    norm_errors = check_outputs(ENCODER, artifact, padded, layout.batch)
    report({**norm_errors, **compare_rows(artifact, padded, expected, f"{extra} more padding")})


@pytest.mark.parametrize("key", ENCODER_KEYS)
def test_fuzz_encoder_at_both_upper_bounds(key, runner, vocab):
    """Batch upper x sequence upper (64 x 256 tokens: ~10 s in the fp32 MIL executor, ~50 s in
    fp16): only in the deep profile. The ci profile covers each upper bound with the other small."""
    if settings.get_current_profile_name() != "deep":
        pytest.skip(
            "batch and sequence both at their upper bound: deep profile only (HYPOTHESIS_PROFILE=deep)"
        )
    artifact, run = artifact_spec(ENCODER, key), runner(ENCODER, key).run
    lengths = [SEQUENCE.upper - (i * 37) % SEQUENCE.upper for i in range(ENC_BATCH.upper)]
    layout = TokenLayout(tuple(lengths), SEQUENCE.upper, tuple(range(ENC_BATCH.upper)))
    batched = run(layout_arrays(layout, vocab))
    check_outputs(ENCODER, artifact, batched, layout.batch)
    for i in (0, layout.batch - 1):
        compare_rows(artifact, rows(batched, [i]), run(layout_arrays(layout.row(i), vocab)), f"row {i}")


@pytest.mark.parametrize("key", ENCODER_KEYS)
@settings(max_examples=ENCODER_EXAMPLES)
@given(texts=cst.text_batches(ENCODER, max_batch=2))
@example(texts=["", " \t\n", "👩\u200d👩\u200d👧\u200d👦 漢字 مرحبا e\u0301"])
@example(texts=["all work and no play " * 400])
def test_fuzz_encoder_texts_give_unit_norm_embeddings(key, texts, runner, tokenizer):
    """Any text (unicode, empty, whitespace, far past the sequence limit) tokenizes into the
    contract and comes out finite and unit-norm where the contract says so."""
    inputs = cst.tokenize(tokenizer, texts, ENCODER)
    assert SEQUENCE.accepts(inputs["input_ids"].shape[1])
    outputs = runner(ENCODER, key).run(inputs)
    report(check_outputs(ENCODER, artifact_spec(ENCODER, key), outputs, len(texts)))


@pytest.mark.parametrize("key", ENCODER_KEYS)
@given(batch=cst.invalid_batch_sizes(ENCODER), sequence=cst.sequence_lengths(ENCODER, max_size=SHORT))
@example(batch=0, sequence=2)
@example(batch=ENC_BATCH.upper + 1, sequence=2)
def test_fuzz_encoder_refuses_a_batch_outside_the_contract(key, batch, sequence, runner):
    inputs = {s.name: np.ones((batch, sequence), s.dtype) for s in ENCODER.inputs}
    with pytest.raises(InputContractError, match=refusal(ENCODER.inputs[0].name, ENC_BATCH, batch)):
        runner(ENCODER, key).run(inputs)


@pytest.mark.parametrize("key", ENCODER_KEYS)
@given(sequence=cst.out_of_range_sizes(SEQUENCE, span=SHORT), batch=cst.batch_sizes(ENCODER, max_size=4))
@example(sequence=0, batch=1)
@example(sequence=SEQUENCE.upper + 1, batch=1)
def test_fuzz_encoder_refuses_a_sequence_outside_the_contract(key, sequence, batch, runner):
    inputs = {s.name: np.ones((batch, sequence), s.dtype) for s in ENCODER.inputs}
    with pytest.raises(InputContractError, match=refusal(ENCODER.inputs[0].name, SEQUENCE, sequence)):
        runner(ENCODER, key).run(inputs)


# --- personality_v1 ----------------------------------------------------------------------------


def unit_batch(batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    return {PM_INPUT.name: float_rows(batch, PM_WIDTH, seed)}


@pytest.mark.parametrize("key", PERSONALITY_KEYS)
@settings(max_examples=PERSONALITY_EXAMPLES)
@given(inputs=cst.float_batches(PERSONALITY))
@example(inputs=unit_batch(PM_BATCH.lower))
@example(inputs=unit_batch(PM_BATCH.upper))
def test_fuzz_personality_every_batch_size_is_accepted(key, inputs, runner):
    outputs = runner(PERSONALITY, key).run(inputs)
    check_outputs(PERSONALITY, artifact_spec(PERSONALITY, key), outputs, len(inputs[PM_INPUT.name]))


@pytest.mark.parametrize("key", PERSONALITY_KEYS)
@settings(max_examples=PERSONALITY_EXAMPLES)
@given(
    inputs=cst.float_batches(PERSONALITY, batch=st.integers(max(2, PM_BATCH.lower), PM_BATCH.upper)),
    picks=st.lists(st.integers(0, PM_BATCH.upper - 1), min_size=1, max_size=3, unique=True),
)
@example(inputs=unit_batch(PM_BATCH.upper, seed=1), picks=[0, PM_BATCH.upper - 1])
def test_fuzz_personality_batch_invariance(key, inputs, picks, runner):
    run = runner(PERSONALITY, key).run
    batched = run(inputs)
    alone = {i: run(rows(inputs, [i])) for i in {p % len(inputs[PM_INPUT.name]) for p in picks}}
    report(rows_match_alone(artifact_spec(PERSONALITY, key), batched, alone))


@pytest.mark.parametrize("key", PERSONALITY_KEYS)
@settings(max_examples=PERSONALITY_EXAMPLES)
@given(
    inputs=cst.float_batches(
        PERSONALITY, kind=st.sampled_from(["unit", "zeros", "unnormalized"]), max_batch=8, norms=(1e-3, 10.0)
    )
)
@example(inputs={PM_INPUT.name: float_rows(2, PM_WIDTH, kind="zeros")})
@example(inputs={PM_INPUT.name: float_rows(3, PM_WIDTH, kind="unnormalized", norm=10.0)})
def test_fuzz_personality_zero_and_unnormalized_inputs(key, inputs, runner, personality_reference):
    """Zero vectors and vectors of norm 1e-3..10 are accepted (unit norm is the encoder's promise,
    not something the runner can check without a tolerance) and each artifact stays within its
    row-wise contract bounds of the torch reference, as on unit-norm inputs."""
    artifact = artifact_spec(PERSONALITY, key)
    outputs = runner(PERSONALITY, key).run(inputs)
    check_outputs(PERSONALITY, artifact, outputs, len(inputs[PM_INPUT.name]))
    expected = {PERSONALITY.outputs[0].name: personality_reference(inputs[PM_INPUT.name])}
    report(compare_rows(artifact, outputs, expected, "against the torch reference"))


@pytest.mark.parametrize("key", PERSONALITY_KEYS)
@given(inputs=cst.float_batches(PERSONALITY, kind=st.sampled_from(["nan", "inf"])))
@example(inputs={PM_INPUT.name: float_rows(4, PM_WIDTH, kind="inf", bad_rows=[1])})
def test_fuzz_personality_refuses_nan_and_inf_inputs(key, inputs, runner):
    """The runners refuse non-finite inputs and name the rows: without that, the int8 ONNX graph
    turns a NaN row into finite logits and one Inf row into a batch of NaN (per-batch scales)."""
    bad = np.flatnonzero(~np.isfinite(inputs[PM_INPUT.name]).all(axis=1)).tolist()
    shown = ", ".join(map(str, bad[:8])) + (", ..." if len(bad) > 8 else "")
    message = (
        f"{PM_INPUT.name}: NaN or Inf in row{'s' if len(bad) > 1 else ''} {shown}; inputs must be finite"
    )
    with pytest.raises(InputContractError, match=f"^{re.escape(message)}$"):
        runner(PERSONALITY, key).run(inputs)


@pytest.mark.parametrize("key", PERSONALITY_KEYS)
@given(batch=cst.invalid_batch_sizes(PERSONALITY))
@example(batch=0)
@example(batch=PM_BATCH.upper + 1)
def test_fuzz_personality_refuses_a_batch_outside_the_contract(key, batch, runner):
    inputs = {PM_INPUT.name: np.zeros((batch, PM_WIDTH), PM_INPUT.dtype)}
    with pytest.raises(InputContractError, match=refusal(PM_INPUT.name, PM_BATCH, batch)):
        runner(PERSONALITY, key).run(inputs)


# --- the runner, not onnxruntime, enforces the contract ---------------------------------------


@pytest.mark.parametrize("contract", [ENCODER, PERSONALITY], ids=lambda c: c.name)
def test_fuzz_onnxruntime_alone_accepts_what_the_contract_refuses(contract, bundles, runner, vocab):
    """A bare onnxruntime session runs a batch of upper + 1 (and, for the encoder, a sequence of
    upper + 1: MiniLM has 512 positions); the toolkit's runner refuses both."""
    import onnxruntime as ort

    path = bundles / contract.name / contract.artifact("onnx-fp32").filename
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = contract.batch.upper + 1
    cases = []
    if contract is ENCODER:
        cases.append((TokenLayout.full(batch, 2).arrays(ENCODER, vocab), ENC_BATCH, batch))
        cases.append(
            (TokenLayout.full(1, SEQUENCE.upper + 1).arrays(ENCODER, vocab), SEQUENCE, SEQUENCE.upper + 1)
        )
    else:
        cases.append((unit_batch(batch), PM_BATCH, batch))
    for inputs, dim, size in cases:
        outputs = session.run(None, inputs)
        assert [o.shape[0] for o in outputs] == [len(next(iter(inputs.values())))] * len(contract.outputs)
        with pytest.raises(InputContractError, match=refusal(contract.inputs[0].name, dim, size)):
            runner(contract, "onnx-fp32").run(inputs)
