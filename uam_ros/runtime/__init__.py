"""Policy backends behind one protocol: torch, ONNX Runtime, TensorRT."""
