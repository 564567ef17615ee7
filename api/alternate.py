"""xAPI's alternate request syntax (Communication 1.3), turned into the request it stands for.

A client that cannot send some methods or headers (a browser making a cross-origin request)
POSTs to the resource with the one query parameter ``method`` and an
``application/x-www-form-urlencoded`` body. In the form, ``Authorization``,
``X-Experience-API-Version``, ``Content-Type``, ``Content-Length``, ``If-Match`` and
``If-None-Match`` are headers, ``content`` is the body, and anything else is a query parameter.
:func:`rewrite` makes that plain request before routing, so every endpoint sees one shape.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

FORM_HEADERS: Final = frozenset(
    {
        "authorization",
        "x-experience-api-version",
        "content-type",
        "content-length",
        "if-match",
        "if-none-match",
    }
)
METHODS: Final = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE"})
_FORM_TYPE: Final = "application/x-www-form-urlencoded"


class AlternateRefused(Exception):
    """Raised when a request uses the alternate syntax wrongly (answered with 400)."""

    def __init__(self, reason: str, path: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path = path


def uses_alternate(scope: MutableMapping[str, Any]) -> bool:
    """Return whether a request's query names a ``method`` (the alternate syntax's mark)."""
    query: bytes = scope.get("query_string", b"")
    return any(name == "method" for name, _ in parse_qsl(query.decode("latin-1"), True))


def rewrite(scope: MutableMapping[str, Any], body: bytes) -> bytes:
    """Turn an alternate-syntax request into the plain one, in place; return its body.

    Raises:
        AlternateRefused: when the request is not a POST, carries query parameters besides
            ``method``, names an unknown method, has a body that is not a URL-encoded form,
            repeats a form field, or lacks ``content`` for a method that sends a body.
    """
    if scope["method"] != "POST":
        raise AlternateRefused("the alternate request syntax is only sent as POST", "query.method")
    query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    for name, _ in query:
        if name != "method":
            raise AlternateRefused(
                "the alternate request syntax takes no query parameter but method; send it in "
                "the form",
                f"query.{name}",
            )
    if len(query) != 1:
        raise AlternateRefused("give method once", "query.method")
    method = query[0][1].upper()
    if method not in METHODS:
        raise AlternateRefused(f"must be one of {', '.join(sorted(METHODS))}", "query.method")
    headers = [(key.lower(), value) for key, value in scope["headers"]]
    content_type = next((v for k, v in headers if k == b"content-type"), b"").decode("latin-1")
    if content_type.split(";")[0].strip().lower() != _FORM_TYPE:
        raise AlternateRefused(
            f"must be {_FORM_TYPE} in the alternate request syntax", "header.Content-Type"
        )
    try:
        fields = parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body), errors="strict"
        )
    except (UnicodeDecodeError, ValueError) as err:
        raise AlternateRefused("is not a URL-encoded form", "body") from err
    seen: set[str] = set()
    form_headers: dict[bytes, bytes] = {}
    params: list[tuple[str, str]] = []
    content: str | None = None
    for name, value in fields:
        if name.lower() in seen:
            raise AlternateRefused("appears twice in the form", f"body.{name}")
        seen.add(name.lower())
        if name.lower() in FORM_HEADERS:
            form_headers[name.lower().encode("latin-1")] = value.encode("latin-1", "replace")
        elif name == "content":
            content = value
        else:
            params.append((name, value))
    if method in ("PUT", "POST") and content is None:
        raise AlternateRefused(f"is required to {method} in the alternate syntax", "body.content")
    new_body = b"" if content is None else content.encode("utf-8")
    if content is not None:
        form_headers.setdefault(b"content-type", b"application/json")
    form_headers[b"content-length"] = str(len(new_body)).encode()
    scope["headers"] = [
        (key, value)
        for key, value in scope["headers"]
        if key.lower() not in form_headers and key.lower() != b"content-type"
    ] + list(form_headers.items())
    scope["method"] = method
    scope["query_string"] = urlencode(params).encode("latin-1")
    return new_body
