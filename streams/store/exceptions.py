"""Exceptions raised by the store."""

from __future__ import annotations


class StoreError(Exception):
    """Raised when the store fails; root of its exceptions."""


class MigrationError(StoreError):
    """Raised when migrations cannot be applied: drift, a mode clash, or a bad policy setting."""


class StoreUnavailable(StoreError):
    """Raised when the database stayed unreachable past the sink's retry deadline."""


class RejectedBatch(StoreError):
    """Raised when the database refuses a batch for its content; retrying cannot help.

    Attributes:
        table: the table the batch was meant for.
        reason: the database's error message.
    """

    def __init__(self, table: str, reason: str) -> None:
        self.table = table
        self.reason = reason
        super().__init__(f"{table}: {reason}")
