"""Scripted behaviour streams in the styles real LMSs write, and how detection is judged on them.

Written apart from the training simulator (none of its code or parameters): each scripted
learner is a short, readable script of what a learner does (:mod:`.script`, :mod:`.learners`),
rendered into the statements one producer would send (:mod:`.styles`), run through the real
normaliser, the serving features, the ONNX model and the stream's own intervention policy
(:mod:`.runner`), and scored against the behaviour's onset (:mod:`.scoring`).
"""
