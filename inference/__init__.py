"""Use a built bundle: encode texts with an encoder bundle (numpy, tokenizers, onnxruntime; no torch)."""
