"""ONNX export of DAGL (ONNX-friendly GFAM, FP16) and TensorRT engine builds."""
