"""The scenario suite, run through the pipeline's own code.

The scripts and producer styles live in the lab (:mod:`inference.lab.scenarios`); running them
needs the stream's processor and policy, which the lab may not import.
"""
