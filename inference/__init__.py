"""Learner simulator, learner model, training, ONNX export, model registry and batched runtime."""
