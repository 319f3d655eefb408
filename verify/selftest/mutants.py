"""Mutants: copies of a good bundle broken in one known way each, for ``verify-contract --self-test``
and the test suite. Every edit works on the files alone (no converter), and, except for the
manifest mutant, rehashes the manifest as a careless rebuild would, so only the check meant to
catch the mutation can."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from contracts.hashing import artifact_content_sha256, tree_sha256
from contracts.schema import UPDATABLE_KEY
from golden.store import INFO_FILE

_BLOB_SENTINEL = 0xDEADBEEF
_BLOB_DTYPES = {1: np.float16, 2: np.float32}  # MIL blob storage data types
_BLOB_INTEGER_DTYPES = {3: np.uint8, 4: np.int8, 6: np.int16, 7: np.uint16}
_SPEC = Path("Data") / "com.apple.CoreML" / "model.mlmodel"


def rehash_manifest(bundle: Path, contents: bool = False) -> None:
    """Recompute the manifest's file table from what is on disk, as a careless rebuild would;
    with ``contents``, each artifact's content_sha256 too, as a careful one would."""
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"] = {k: v for k, v in tree_sha256(bundle).items() if k != "manifest.json"}
    if contents:
        for entry in manifest.get("artifacts", {}).values():
            entry["content_sha256"] = artifact_content_sha256(bundle / entry["path"])
    path.write_text(json.dumps(manifest, indent=1, sort_keys=True))


def rerecord(bundle: Path, key: str) -> None:
    """Record artifact ``key``'s graph signature and self-goldens again, as a rebuild with an edited
    recipe would (then ``rehash_manifest(bundle, contents=True)``)."""
    from golden.store import read_golden
    from verify.records import record_artifact

    contract = _contract_of(bundle)
    record_artifact(bundle, contract, contract.artifact(key), read_golden(bundle / "golden"))


def edit_coreml_spec(mlpackage: Path, edit: Callable) -> None:
    """Load the Model proto inside an .mlpackage, apply ``edit(spec)``, write it back."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(mlpackage))
    edit(spec)
    (mlpackage / _SPEC).write_bytes(spec.SerializeToString())


def perturb_weight_blob(mlpackage: Path, relative: float, seed: int = 0) -> None:
    """Scale the largest float blob in weights/weight.bin by 1 ± ``relative`` (random signs)."""
    weights = next(mlpackage.rglob("weight.bin"))
    data = bytearray(weights.read_bytes())
    position, blobs = 64, []
    while position + 24 <= len(data):
        sentinel, dtype, size, offset = struct.unpack_from("<IIQQ", data, position)
        if sentinel != _BLOB_SENTINEL:
            break
        if dtype in _BLOB_DTYPES:
            blobs.append((size, offset, _BLOB_DTYPES[dtype]))
        position = (offset + size + 63) // 64 * 64
    size, offset, dtype = max(blobs)
    values = np.frombuffer(bytes(data[offset : offset + size]), dtype=dtype).astype(np.float64)
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=values.shape)
    data[offset : offset + size] = (values * (1 + relative * signs)).astype(dtype).tobytes()
    weights.write_bytes(bytes(data))


def edit_coreml_blob(mlpackage: Path, const: str, change: Callable[[np.ndarray], np.ndarray]) -> None:
    """Replace the weight blob of the const (or constexpr input) named ``const`` by
    ``change(values)``, in place in weights/weight.bin."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(mlpackage))
    function = spec.mlProgram.functions["main"]
    values = []
    for op in function.block_specializations[function.opset].operations:
        if op.type == "const" and op.outputs[0].name == const:
            values.append(op.attributes["val"])
        elif op.type.startswith("constexpr_") and op.outputs[0].name == const:
            values.append(op.attributes["quantized_data"])
    if not values or values[0].WhichOneof("value") != "blobFileValue":
        raise ValueError(f"no weight blob named {const!r} in {mlpackage.name}")
    weights = next(mlpackage.rglob("weight.bin"))
    data = bytearray(weights.read_bytes())
    sentinel, dtype_code, size, offset = struct.unpack_from("<IIQQ", data, values[0].blobFileValue.offset)
    dtype = {**_BLOB_DTYPES, **_BLOB_INTEGER_DTYPES}[dtype_code]
    array = np.frombuffer(bytes(data[offset : offset + size]), dtype=dtype).copy()
    data[offset : offset + size] = np.asarray(change(array), dtype).tobytes()
    weights.write_bytes(bytes(data))


def set_first(old: float, new: float) -> Callable[[np.ndarray], np.ndarray]:
    """Change the first element equal to ``old`` to ``new``."""

    def change(values: np.ndarray) -> np.ndarray:
        position = int(np.flatnonzero(values == old)[0])
        values.flat[position] = new
        return values

    return change


def scaled(relative: float, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """Multiply by 1 ± ``relative``, random signs per element."""

    def change(values: np.ndarray) -> np.ndarray:
        signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=values.shape)
        return values.astype(np.float64) * (1 + relative * signs)

    return change


def _edit_onnx(path: Path, edit: Callable) -> None:
    import onnx

    model = onnx.load(str(path))
    edit(model)
    onnx.save(model, str(path))


def edit_onnx_initializer(path: Path, suffix: str, change: Callable[[np.ndarray], np.ndarray]) -> None:
    """Replace the initializer whose name ends with ``suffix`` by ``change(values)``."""
    from onnx import numpy_helper

    def edit(model) -> None:
        target = next(i for i in model.graph.initializer if i.name.endswith(suffix))
        values = numpy_helper.to_array(target).copy()
        target.CopyFrom(numpy_helper.from_array(np.asarray(change(values), values.dtype), target.name))

    _edit_onnx(path, edit)


def perturb_onnx_initializer(path: Path, suffix: str, relative: float, seed: int = 0) -> None:
    """Scale an initializer by 1 ± ``relative`` with random signs. (A uniform scale would be nearly
    invisible after an L2 normalisation.)"""
    edit_onnx_initializer(path, suffix, scaled(relative, seed))


def scale_onnx_initializers(path: Path, suffix: str, factor: float) -> None:
    """Multiply every initializer whose name ends with ``suffix`` by ``factor``."""
    from onnx import numpy_helper

    def edit(model) -> None:
        targets = [i for i in model.graph.initializer if i.name.endswith(suffix)]
        if not targets:
            raise ValueError(f"no initializer ends with {suffix!r}")
        for target in targets:
            values = numpy_helper.to_array(target)
            target.CopyFrom(numpy_helper.from_array((values * factor).astype(values.dtype), target.name))

    _edit_onnx(path, edit)


def overflow_fp16_initializer(path: Path, suffix: str, value: float = 7e4) -> None:
    """Store ``value`` (beyond fp16's 65504) in one element of an fp16 weight: it becomes inf,
    as a large fp32 weight does when a model is cast to fp16."""

    def change(values: np.ndarray) -> np.ndarray:
        if values.dtype != np.float16:
            raise ValueError(f"{suffix} is {values.dtype}, not float16")
        with np.errstate(over="ignore"):
            values.flat[0] = np.float16(value)
        return values

    edit_onnx_initializer(path, suffix, change)


def drop_final_l2(path: Path, output: str) -> None:
    """Return the projection itself: the Div by the L2 norm that produces ``output`` becomes Identity."""

    def edit(model) -> None:
        producers = {o: n for n in model.graph.node for o in n.output}
        node = producers[output]
        while node.op_type in ("Cast", "Identity"):
            node = producers[node.input[0]]
        if node.op_type != "Div":
            raise ValueError(f"{output} is not produced by an L2 division")
        node.op_type = "Identity"
        del node.input[1:]

    _edit_onnx(path, edit)


def scale_onnx_output(path: Path, output: str, factor: float) -> None:
    """Multiply graph output ``output`` by ``factor``: rows no longer unit-norm, directions kept."""
    from onnx import helper, numpy_helper

    def edit(model) -> None:
        producer = next(n for n in model.graph.node if output in n.output)
        unscaled = f"{output}/unscaled"
        producer.output[list(producer.output).index(output)] = unscaled
        model.graph.initializer.append(
            numpy_helper.from_array(np.array(factor, np.float32), f"{output}/factor")
        )
        model.graph.node.append(helper.make_node("Mul", [unscaled, f"{output}/factor"], [output]))

    _edit_onnx(path, edit)


def signed_onnx_weights(path: Path) -> None:
    """Store every portable (uint8, zero point 128) integer-GEMM weight as signed int8, zero
    point 0: the same values, but u8s8 math, which saturates on x86 CPUs without VNNI."""
    from verify.backends.integer_kernels import sign_weights

    _edit_onnx(path, sign_weights)


def set_onnx_metadata(path: Path, key: str, value: str | None) -> None:
    def edit(model) -> None:
        kept = [p for p in model.metadata_props if p.key != key]
        del model.metadata_props[:]
        model.metadata_props.extend(kept)
        if value is not None:
            model.metadata_props.add(key=key, value=value)

    _edit_onnx(path, edit)


def swap_tokens(bundle: Path) -> None:
    path = bundle / "personality-tokens.json"
    tokens = json.loads(path.read_text())
    tokens[0], tokens[1] = tokens[1], tokens[0]
    path.write_text(json.dumps(tokens))


def swap_vocabulary(bundle: Path, first: str = "cat", second: str = "dog") -> None:
    """Swap two WordPiece entries in tokenizer.json and vocab.txt: a consistent tokenizer, but
    another tokenization (texts with those words get each other's ids)."""
    path = bundle / "tokenizer" / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    vocab = data["model"]["vocab"]
    vocab[first], vocab[second] = vocab[second], vocab[first]
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    lines_path = bundle / "tokenizer" / "vocab.txt"
    lines = lines_path.read_text(encoding="utf-8").split("\n")
    a, b = lines.index(first), lines.index(second)
    lines[a], lines[b] = lines[b], lines[a]
    lines_path.write_text("\n".join(lines), encoding="utf-8")


def edit_tokenizer(bundle: Path, edit: Callable[[dict], None]) -> None:
    """Apply ``edit`` to the bundle's tokenizer.json, then re-stamp the conformance fixture's
    tokenizer hash: a rebuilt fixture header, over the old fixture cases."""
    from contracts.hashing import sha256_file

    path = bundle / "tokenizer" / "tokenizer.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    spec = _contract_of(bundle).tokenizer_spec
    if spec.conformance:
        fixture_path = bundle / spec.conformance
        fixture = json.loads(fixture_path.read_text(encoding="utf-8"))
        fixture["tokenizer_sha256"] = sha256_file(path)
        fixture_path.write_text(json.dumps(fixture, ensure_ascii=False), encoding="utf-8")


def rename_vocabulary_entry(old: str = "the", new: str = "thé") -> Callable[[dict], None]:
    """One WordPiece entry renamed, its id kept: texts with ``old`` tokenize to other pieces."""

    def edit(data: dict) -> None:
        vocab = data["model"]["vocab"]
        vocab[new] = vocab.pop(old)

    return edit


def set_normalizer(option: str, value: object) -> Callable[[dict], None]:
    """One BERT normalizer option (``lowercase``, ``strip_accents``) set to ``value``."""

    def edit(data: dict) -> None:
        data["normalizer"][option] = value

    return edit


def swap_golden_texts(bundle: Path, first: int = 1, second: int = 2) -> None:
    path = bundle / "golden" / INFO_FILE
    info = json.loads(path.read_text())
    info["texts"][first], info["texts"][second] = info["texts"][second], info["texts"][first]
    path.write_text(json.dumps(info))


def stale_golden(bundle: Path) -> None:
    path = bundle / "golden" / INFO_FILE
    info = json.loads(path.read_text())
    info["weights_provenance"] = "demo weights (seed 1, not trained)"
    path.write_text(json.dumps(info))


def moved_embedding_space(bundle: Path, relative: float = 1e-3) -> None:
    """The head projection of every artifact changed and the goldens regenerated, the fingerprint
    left as it was: the golden embeddings move (here: each weight x(1 ± 1e-3) through the fp32
    ONNX, which becomes the goldens' embedding) while every hash the manifest records is fresh."""
    from golden.store import read_golden, write_golden
    from verify.backends.runners import OnnxRunner
    from verify.checks.numerics import run_goldens

    golden = read_golden(bundle / "golden")
    contract = _contract_of(bundle)
    fp32 = bundle / contract.artifact("onnx-fp32").filename
    perturb_onnx_initializer(fp32, "head.projection.weight", relative)
    outputs = run_goldens(OnnxRunner(contract, fp32), contract, golden, contract.batch.upper)
    write_golden(bundle / "golden", {**golden.tensors, "embedding": outputs["embedding"]}, golden.info)


def tamper_manifest_hash(bundle: Path) -> None:
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    name = sorted(manifest["files"])[0]
    manifest["files"][name] = "0" * 64
    path.write_text(json.dumps(manifest))


def head_layer(spec, name: str = "projection"):
    """A layer of the updatable pipeline's NeuralNetwork head."""
    return next(layer for layer in spec.pipeline.models[-1].neuralNetwork.layers if layer.name == name)


def gelu_tanh(spec) -> None:
    """Switch every GELU of an ML Program to its tanh approximation (a mode, not a weight)."""
    function = spec.mlProgram.functions["main"]
    operations = function.block_specializations[function.opset].operations
    modes = {op.inputs["mode"].arguments[0].name for op in operations if op.type == "gelu"}
    for op in operations:
        if op.type == "const" and op.outputs[0].name in modes:
            strings = op.attributes["val"].immediateValue.tensor.strings.values
            strings[:] = ["TANH_APPROXIMATION"]


def _perturb_head(spec) -> None:
    weights = head_layer(spec).innerProduct.weights
    values = np.asarray(weights.floatValue, dtype=np.float64)
    signs = np.random.default_rng(0).choice([-1.0, 1.0], size=values.shape)
    weights.floatValue[:] = (values * (1 + 1e-3 * signs)).astype(np.float32).tolist()


def add_extra_updatable_layer(spec) -> None:
    """A second updatable innerProduct in the head, beside the contract's one."""
    nn = spec.pipeline.models[-1].neuralNetwork
    extra = nn.layers.add()
    extra.CopyFrom(head_layer(spec))
    extra.name, extra.input[:], extra.output[:] = "extra_linear", ["features"], ["extra_out"]


def _narrow_batch(spec) -> None:
    spec.description.input[0].type.multiArrayType.shapeRange.sizeRanges[0].upperBound = 32


def _drop_largest_enumerated_shape(spec) -> None:
    for feature in spec.description.input:
        shapes = feature.type.multiArrayType.enumeratedShapes.shapes
        if shapes:
            del shapes[len(shapes) - 1]


@dataclass(frozen=True)
class Mutant:
    name: str
    contract: str
    expected: str  # the check that must catch it
    apply: Callable[[Path], None]
    only: tuple[str, ...] = ()  # artifacts to verify (speed); empty = all
    numerics: bool = True
    rehash: bool = True
    careful: bool = False  # the rehash refreshes content hashes too: only deeper checks can catch it
    alongside: tuple[str, ...] = ()  # contracts whose clean bundles are verified with it (pinning)


def _contract_of(bundle: Path):
    from contracts import get_contract

    return get_contract(json.loads((bundle / "contract.json").read_text())["name"])


def _in(key: str, action: Callable[[Path], None]) -> Callable[[Path], None]:
    """Apply ``action`` to artifact ``key`` of the bundle (the updatable model's key included),
    its file named by the bundle's contract."""

    def apply(bundle: Path) -> None:
        contract = _contract_of(bundle)
        filename = contract.training.filename if key == UPDATABLE_KEY else contract.artifact(key).filename
        action(bundle / filename)

    return apply


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "onnx-fp32 weight x(1 ± 1e-3)",
        "encoder_v1",
        "onnx-fp32/numerics[embedding]",
        _in("onnx-fp32", lambda p: perturb_onnx_initializer(p, "head.projection.weight", 1e-3)),
        only=("onnx-fp32",),
    ),
    Mutant(
        "coreml-fp32 weight x(1 ± 1e-3)",
        "personality_v1",
        "coreml-fp32/numerics[logits]",
        _in("coreml-fp32", lambda p: perturb_weight_blob(p, 1e-3)),
        only=("coreml-fp32",),
    ),
    Mutant(
        "updatable head weight x(1 ± 1e-3)",
        "personality_v1",
        "coreml-updatable/head-weights",
        _in(UPDATABLE_KEY, lambda p: edit_coreml_spec(p, _perturb_head)),
        only=(UPDATABLE_KEY,),
    ),
    Mutant("token order swapped", "personality_v1", "onnx-fp32/metadata", swap_tokens, numerics=False),
    Mutant(
        "batch range 1..32",
        "encoder_v1",
        "coreml-fp32/structure",
        _in("coreml-fp32", lambda p: edit_coreml_spec(p, _narrow_batch)),
        numerics=False,
    ),
    Mutant(
        "enumerated sequence 256 dropped",
        "encoder_v1",
        "coreml-fp16-enumerated/structure",
        _in("coreml-fp16-enumerated", lambda p: edit_coreml_spec(p, _drop_largest_enumerated_shape)),
        numerics=False,
    ),
    Mutant(
        "metadata key missing",
        "personality_v1",
        "onnx-int8/metadata",
        _in("onnx-int8", lambda p: set_onnx_metadata(p, "vocab_size", None)),
        numerics=False,
    ),
    Mutant(
        "metadata value wrong",
        "encoder_v1",
        "onnx-fp16/metadata",
        _in("onnx-fp16", lambda p: set_onnx_metadata(p, "embedding_dim", "1024")),
        numerics=False,
    ),
    Mutant(
        "extra updatable layer",
        "personality_v1",
        "coreml-updatable/updatable-parameters",
        _in(UPDATABLE_KEY, lambda p: edit_coreml_spec(p, add_extra_updatable_layer)),
        numerics=False,
    ),
    Mutant(
        "final L2 normalisation dropped",
        "encoder_v1",
        "onnx-fp32/numerics[embedding]",
        _in("onnx-fp32", lambda p: drop_final_l2(p, "embedding")),
        only=("onnx-fp32",),
    ),
    Mutant(
        "fp16 overflow",
        "encoder_v1",
        "onnx-fp16/numerics[embedding]",
        _in("onnx-fp16", lambda p: overflow_fp16_initializer(p, "head.projection.weight")),
        only=("onnx-fp16",),
    ),
    Mutant("stale golden", "personality_v1", "golden", stale_golden, numerics=False),
    Mutant(
        "tokenizer vocabulary entries swapped", "encoder_v1", "tokenizer", swap_vocabulary, numerics=False
    ),
    Mutant("golden texts swapped", "encoder_v1", "tokenizer", swap_golden_texts, numerics=False),
    Mutant(
        "vocabulary entry renamed, fixture re-stamped",
        "encoder_v1",
        "tokenizer-conformance",
        lambda b: edit_tokenizer(b, rename_vocabulary_entry()),
        numerics=False,
    ),
    Mutant(
        "normalizer keeps accents, fixture re-stamped",
        "encoder_v1",
        "tokenizer-conformance",
        lambda b: edit_tokenizer(b, set_normalizer("strip_accents", False)),
        numerics=False,
    ),
    Mutant(
        "embedding rows not unit norm (x 1.00002)",
        "encoder_v1",
        "onnx-fp32/numerics[embedding]",
        _in("onnx-fp32", lambda p: scale_onnx_output(p, "embedding", 1 + 2e-5)),
        only=("onnx-fp32",),
    ),
    Mutant(
        "coreml-fp16 GELU switched to tanh, content rehashed",
        "encoder_v1",
        "coreml-fp16/graph",
        _in("coreml-fp16", lambda p: edit_coreml_spec(p, gelu_tanh)),
        numerics=False,
        careful=True,
    ),
    Mutant(
        "coreml-int8 weight 25 -> -127, content rehashed",
        "encoder_v1",
        "coreml-int8/self[embedding]",
        _in(
            "coreml-int8",
            lambda p: edit_coreml_blob(
                p, "bert_encoder_layer_0_attention_self_query_weight_to_fp16_quantized", set_first(25, -127)
            ),
        ),
        only=("coreml-int8",),
        careful=True,
    ),
    Mutant(
        "embedding space moved, goldens regenerated, fingerprint stale",
        "encoder_v1",
        "encoder-pinning",
        moved_embedding_space,
        numerics=False,
        careful=True,
        alongside=("personality_v1",),
    ),
    Mutant(
        "tampered manifest hash", "encoder_v1", "manifest", tamper_manifest_hash, numerics=False, rehash=False
    ),
)
