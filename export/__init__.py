"""Build a bundle from a trained model: torch to ONNX, int8 quantization passes, the troll threshold, and
:mod:`earful.export.writer`, the one module that writes bundle files. Imports torch and onnx (the runtime,
:mod:`earful.models`, never does)."""
