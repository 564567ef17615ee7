"""Serving of the learner model: features, model registry, batched runtime, decision, policy.

The lab (:mod:`inference.lab`: simulator, datasets, evaluation) and training
(:mod:`inference.training`: torch model, export, release) are subpackages the serving modules
never import.
"""
