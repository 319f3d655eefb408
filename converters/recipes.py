"""Which weights each model keeps in float when its Core ML weights go to 8-bit.

Measured in docs/QUANTIZATION.md: quantising every MiniLM weight per-channel gives cos_min
0.9963 on the golden corpus; keeping the six FFN output projections (``output.dense``) in
float lifts it above 0.999. The spec keeps the 384→1536 projection out of 8-bit too.
"""

from __future__ import annotations

import numpy as np
import torch


def coreml_int8_float_weights(contract_name: str, module: torch.nn.Module) -> tuple[np.ndarray, ...]:
    if contract_name == "encoder_v1":
        weights = [layer.output.dense.weight for layer in module.bert.encoder.layer]
        weights.append(module.head.projection.weight)
        return tuple(w.detach().numpy() for w in weights)
    return ()


def onnx_int8_recipe(contract):
    """The ONNX int8 quantizer of each model (docs/QUANTIZATION.md): ``recipe(fp32_path, out_path)``."""
    from contracts import ENCODER_V1, PERSONALITY_V1
    from converters import onnx_quantize

    recipes = {
        ENCODER_V1.name: onnx_quantize.quantize_encoder_int8,
        PERSONALITY_V1.name: onnx_quantize.quantize_personality_int8,
    }
    if contract.name not in recipes:
        raise ValueError(f"no ONNX int8 recipe for {contract.name}")
    return recipes[contract.name]
