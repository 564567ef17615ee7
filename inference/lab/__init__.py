"""The learner model's lab: simulator, datasets, baselines, ceiling, metrics and evaluation.

Research code, the closed-loop evaluation of the next-item policy included: the serving path (the
stream worker and the API) never imports it.
"""
