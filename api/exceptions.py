"""Exceptions of the API; the routers and the app turn each into one HTTP status."""

from __future__ import annotations


class ApiError(Exception):
    """Raised when something in the API package fails; root of its exceptions.

    Attributes:
        path: the field path the error concerns (``actor.mbox``, ``cursor``), or ``""``.
        reason: what is wrong, phrased so the client can act on it.
    """

    def __init__(self, reason: str, path: str = "") -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {reason}" if path else reason)


class BadRequest(ApiError):
    """Raised when a request is malformed: a header, parameter or body field is invalid (400)."""


class Unauthenticated(ApiError):
    """Raised when a request carries no API key, or one that is unknown or revoked (401)."""


class Forbidden(ApiError):
    """Raised when a valid key lacks the scope or class a request needs (403)."""


class NotFound(ApiError):
    """Raised when the requested statement, intervention or learner does not exist (404)."""


class Conflict(ApiError):
    """Raised when a request contradicts what is stored: an id reused, an act repeated (409)."""


class PayloadTooLarge(ApiError):
    """Raised when a request body exceeds the size limit, before or after decompression (413)."""


class UnsupportedMediaType(ApiError):
    """Raised when a body's content type or encoding is not one the endpoint reads (415)."""


class RateLimited(ApiError):
    """Raised when a key sends more requests than its rate allows (429).

    Attributes:
        retry_after_s: seconds until the key may send again.
    """

    def __init__(self, reason: str, retry_after_s: float) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class Unavailable(ApiError):
    """Raised when the broker or the database does not confirm in time (503)."""
