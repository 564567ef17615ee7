"""Training of the learner model: the torch model, its training, ONNX export and release.

Imports torch and transformers; the serving path never imports it.
"""
