"""``autokd export``: a trained student as safetensors, ONNX (checked with onnxruntime) or TorchScript, with a model card."""
