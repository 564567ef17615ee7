"""Exceptions raised by the contracts."""

from __future__ import annotations


class SchemaError(Exception):
    """Raised when something in the contracts package fails; root of its exceptions."""


class InvalidEvent(SchemaError):
    """Raised when an inbound record cannot be normalised; carries the field path and the reason.

    Attributes:
        path: dotted path of the failing field (``actor.mbox``, ``data[0].object.id``), or
            ``""`` when the record as a whole is unreadable.
        reason: what is wrong, phrased so the producer can act on it.
        source: the inbound format that was being read (``xapi``, ``caliper``, ``native``) or
            ``None`` when it could not be told.
    """

    def __init__(self, path: str, reason: str, source: str | None = None) -> None:
        self.path = path
        self.reason = reason
        self.source = source
        super().__init__(f"{path}: {reason}" if path else reason)

    def to_dict(self) -> dict[str, str | None]:
        """Return the error as a JSON-ready mapping (used by the DLQ and the HTTP edge)."""
        return {"path": self.path, "reason": self.reason, "source": self.source}
