"""Where the encoder's time goes: onnxruntime's per-node profiler, torch.profiler and cProfile.

- ``profile_onnx``: onnxruntime's own profiler (``enable_profiling``) on the pre-tokenized golden
  batches; kernel time summed per operator type, and the share of ``run`` spent in kernels.
- ``profile_torch``: ``torch.profiler`` on ``SentenceTransformer.encode``; self CPU time per aten op.
- ``profile_python``: cProfile on a text-in call; the functions with the most own time (what the
  Python side costs around the native calls: tokenizer, padding, dispatch).
"""

from __future__ import annotations

import cProfile
import json
import pstats
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

#: Operator types that are matrix products (fp32 or int8) in onnxruntime's CPU graphs.
GEMM_OPS = {
    "MatMul",
    "FusedMatMul",
    "Gemm",
    "FusedGemm",
    "MatMulInteger",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
    "QAttention",
    "Attention",
    "MatMulNBits",
}
TORCH_GEMM_OPS = {"aten::addmm", "aten::mm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm"}


def _shares(totals: dict[str, float], top: int) -> list[tuple[str, float]]:
    whole = sum(totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)
    return [(name, value / whole) for name, value in ranked[:top]]


def profile_onnx(path: Path, batches: list[dict], runs: int = 3, top: int = 6) -> dict[str, object]:
    """Per-operator kernel time of the model at ``path``, as the runners run it (int8 on u8s8
    kernels where those are exact)."""
    import onnxruntime as ort

    from verify.backends.integer_kernels import fast_model_bytes

    source: str | bytes = fast_model_bytes(path) or str(path)

    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        options.log_severity_level = 3
        session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        for inputs in batches:  # warm-up, not timed
            session.run(None, inputs)
        per_batch = [0.0] * len(batches)
        for _ in range(runs):
            for index, inputs in enumerate(batches):
                start = time.perf_counter()
                session.run(None, inputs)
                per_batch[index] += time.perf_counter() - start
        wall = sum(per_batch)
        events = json.loads(Path(session.end_profiling()).read_text())
    totals: dict[str, float] = {}
    run_us = []
    for event in events:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            op = event.get("args", {}).get("op_name", "?")
            totals[op] = totals.get(op, 0.0) + event["dur"]
        elif event.get("cat") == "Session" and event.get("name") == "model_run":
            run_us.append(event["dur"])
    return {  # totals and run_us both include the warm-up pass
        "top": _shares(totals, top),
        "gemm_share": sum(v for k, v in totals.items() if k in GEMM_OPS) / (sum(totals.values()) or 1.0),
        "kernel_share_of_run": sum(totals.values()) / (sum(run_us) or 1.0),
        "seconds_per_pass": wall / runs,
        "batch_share": [
            (f"{inputs['input_ids'].shape[0]}×{inputs['input_ids'].shape[1]}", seconds / (wall or 1.0))
            for inputs, seconds in zip(batches, per_batch, strict=True)
        ],
    }


def profile_torch(run: Callable[[], object], runs: int = 2, top: int = 6) -> dict[str, object]:
    from torch.profiler import ProfilerActivity, profile

    run()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(runs):
            run()
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        totals[event.key] = totals.get(event.key, 0.0) + event.self_cpu_time_total
    return {
        "top": _shares(totals, top),
        "gemm_share": sum(v for k, v in totals.items() if k in TORCH_GEMM_OPS)
        / (sum(totals.values()) or 1.0),
    }


def profile_python(run: Callable[[], object], runs: int = 2, top: int = 5) -> dict[str, object]:
    run()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        run()
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, nc, tottime, cumtime, callers)
    totals: dict[str, float] = {}
    for (file, line, name), (_, _, own, _, _) in stats.items():
        where = name if file == "~" else f"{Path(file).name}:{line}({name})"
        totals[where] = totals.get(where, 0.0) + own
    return {"top": _shares(totals, top), "seconds_per_pass": sum(totals.values()) / runs}


def profile_encoder(
    bundle: Path, st=None, extra: dict[str, Path] | None = None
) -> dict[str, dict[str, object]]:
    """The ONNX fp32 and int8 encoder (onnxruntime profiler + cProfile), the anchor on the same
    batches (torch.profiler + cProfile), and ``extra`` ONNX graphs (onnxruntime profiler only),
    on the golden corpus in length-sorted batches of 64."""
    from contracts import ENCODER_V1
    from golden.store import read_golden
    from inference.encode import DEFAULT_BATCH, BundleEncoder

    texts = list(read_golden(bundle / "golden").info["texts"])
    result: dict[str, dict[str, object]] = {}
    for key in ("onnx-fp32", "onnx-int8"):
        encoder = BundleEncoder(bundle, key)
        batches = [inputs for _, inputs in encoder.batches(texts, DEFAULT_BATCH)]
        path = bundle / ENCODER_V1.artifact(key).filename
        result[key] = {
            "onnxruntime": profile_onnx(path, batches),
            "python": profile_python(lambda e=encoder: e.encode(texts, DEFAULT_BATCH)),
        }
    for key, path in (extra or {}).items():
        result[key] = {"onnxruntime": profile_onnx(path, batches)}
    if st is not None:
        groups = [[texts[i] for i in rows] for rows, _ in encoder.batches(texts, DEFAULT_BATCH)]

        def encode() -> object:
            return [st.encode(g, batch_size=len(g), show_progress_bar=False) for g in groups]

        result["st"] = {"torch": profile_torch(encode), "python": profile_python(encode)}
    return result
