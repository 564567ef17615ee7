"""`tutorstream produce`: send LMS events to ``lms.events.v1``."""

from __future__ import annotations


def produce() -> None:
    """Send events to the broker."""
    raise NotImplementedError
