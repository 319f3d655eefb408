"""Runtimes the verifier runs artifacts on: onnxruntime, the MIL executor, Core ML on macOS, and the
updatable head replayed in numpy."""
