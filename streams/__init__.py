"""Faust stream processors: normalise, sessionise, score, decide and sink learning events."""
