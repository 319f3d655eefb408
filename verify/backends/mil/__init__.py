"""A numpy executor for Core ML ML Programs, for checking ``.mlpackage`` numerics on Linux.

Core ML prediction needs macOS; this package loads the ML Program with coremltools' milproto
loader and evaluates it op by op in numpy (float32; fp16 programs are emulated by rounding every
fp16 op output to float16). See :mod:`verify.backends.mil.executor` for how that differs from GPU and
Neural Engine arithmetic: results approximate device numerics, they are not bit-exact.

    from verify.backends.mil import MILProgramExecutor
    outputs = MILProgramExecutor("encoder.mlpackage").run({"input_ids": ids, "attention_mask": mask})
"""

from verify.backends.mil.errors import MILExecutionError, UnsupportedOpError
from verify.backends.mil.executor import MILProgramExecutor
from verify.backends.mil.ops import REGISTRY, OpContext

__all__ = ["REGISTRY", "MILExecutionError", "MILProgramExecutor", "OpContext", "UnsupportedOpError"]
