"""Raised by replays and by the comparison of a rescore with the live tables."""


class ReplayError(RuntimeError):
    """A replay that cannot start: a bad selection, a missing topic, a foreign checkpoint."""


class ReplayDiffError(RuntimeError):
    """Raised when a schema to compare holds no predictions table."""
