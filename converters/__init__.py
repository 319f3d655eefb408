"""Converters: PyTorch reference → Core ML and ONNX artifacts, assembled into bundles."""
