"""Errors of the tutors' console."""

from __future__ import annotations


class ConsoleError(Exception):
    """Raised when the console cannot do what was asked; the root of the console's errors."""


class SignInFailed(ConsoleError):
    """Raised when a sign-in cannot be completed or an ID token is refused."""


class RosterError(ConsoleError):
    """Raised when a roster cannot be read or stored; names the row and column where known.

    Attributes:
        row: the 1-based row of the file (the header is row 1), or ``None``.
        column: the column's name, or ``None``.
        reason: what is wrong.
    """

    def __init__(self, reason: str, row: int | None = None, column: str | None = None) -> None:
        where = ""
        if row is not None:
            where = f"row {row}" + (f", column {column}" if column else "") + ": "
        super().__init__(f"{where}{reason}")
        self.row = row
        self.column = column
        self.reason = reason
