"""Inference over TensorRT, ONNX Runtime and PyTorch behind one runner interface."""
