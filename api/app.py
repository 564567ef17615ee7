"""The FastAPI app: :func:`create_app` wires settings, routers, errors and the edge middleware.

Every error answers with the same JSON (``status``, ``error``, ``path``, ``reason``) and the
status that fits: a malformed request is a 400 naming the failing field, never FastAPI's 422.
Error reasons never repeat a learner's identifier back: where the failing field is one, the
value is left out.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.auth import challenge
from api.console import pages as console_pages
from api.console.runtime import Console
from api.edge import Edge, problem_body
from api.exceptions import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
    Unavailable,
    UnsupportedMediaType,
)
from api.routers import health, ingest, live, tutor, xapi
from api.runtime import Metrics, Runtime
from api.settings import ApiSettings
from schemas.exceptions import InvalidEvent

log = logging.getLogger(__name__)

_STATUS: Final[dict[type[ApiError], int]] = {
    BadRequest: 400,
    Unauthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    UnsupportedMediaType: 415,
    RateLimited: 429,
    Unavailable: 503,
}
# Fields that hold a learner's identifier: an error about one never quotes the value.
_IDENTIFYING: Final = re.compile(
    r"(?:^|[.\]])(?:actor|mbox|mbox_sha1sum|openid|account|name|homePage|member|learner_id|"
    r"instructor|team|authority|agent)(?:$|[.\[])"
)
_QUOTED: Final = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def safe_reason(path: str, reason: str) -> str:
    """Return ``reason`` with quoted values removed when ``path`` is an identifying field."""
    if _IDENTIFYING.search(path):
        return _QUOTED.sub("(value withheld)", reason)
    return reason


def _problem(status: int, reason: str, path: str = "", **headers: str) -> Response:
    return Response(
        problem_body(status, safe_reason(path, reason), path),
        status_code=status,
        media_type="application/json",
        headers=headers or None,
    )


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    status = next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), 500)
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthenticated):
        headers["WWW-Authenticate"] = challenge()
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    if isinstance(exc, Unavailable):
        log.warning("%s %s: %s", request.method, request.url.path, exc.reason)
    return _problem(status, exc.reason, exc.path, **headers)


async def _invalid_event(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidEvent)
    return _problem(400, exc.reason, exc.path)


def _location(loc: tuple[Any, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if not errors:
        return _problem(400, "the request is not valid")
    first = errors[0]
    return _problem(400, str(first.get("msg", "is not valid")), _location(tuple(first["loc"])))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    reason = exc.detail if isinstance(exc.detail, str) else "the request cannot be served"
    headers = dict(exc.headers or {})
    return _problem(status, reason, **headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error(
        "%s %s failed: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc
    )
    return _problem(500, "the server failed to answer; the error is logged")


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """Build the API.

    Args:
        settings: the API's settings; read from ``TUTORSTREAM_*`` when ``None``.

    Returns:
        The ASGI app. The database pool, the producer and the live-feed consumer start with
        the app's lifespan and stop with it.
    """
    settings = settings or ApiSettings()
    metrics = Metrics()
    runtime = Runtime.build(settings, metrics)
    console = Console.build(settings, runtime.store)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.store.open()
        runtime.delivery.start()
        runtime.feed.start()
        console.start()
        try:
            yield
        finally:
            await console.stop()
            runtime.feed.stop()
            runtime.delivery.close()
            await runtime.store.close()

    app = FastAPI(
        title="tutorstream API",
        version="1.0.0",
        summary="LMS ingest (xAPI 1.0.3, Caliper 1.2, native events) and the tutor alerting API.",
        description=(
            "Authenticate with an API key: `Authorization: Bearer tsk_...` (xAPI clients may "
            "send the key id and secret as HTTP Basic credentials). Keys are made with "
            "`tutorstream keys create`. Learners appear only as pseudonyms. Errors are JSON "
            "`{status, error, path, reason}`; `path` names the failing field."
        ),
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.console = console
    for router in (xapi.router, ingest.router, tutor.router, live.router, health.router):
        app.include_router(router)
    console_pages.mount(app)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(InvalidEvent, _invalid_event)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(
        Edge,
        max_body_bytes=settings.api.max_body_bytes,
        requests=metrics.requests,
        latency=metrics.latency,
    )
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["apiKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "tsk_<key id>_<secret>, from `tutorstream keys create`.",
    }
    components.setdefault("schemas", {})["Problem"] = {
        "type": "object",
        "required": ["status", "error", "path", "reason"],
        "properties": {
            "status": {"type": "integer"},
            "error": {"type": "string"},
            "path": {"type": "string"},
            "reason": {"type": "string"},
        },
        "example": {
            "status": 400,
            "error": "Bad Request",
            "path": "actor.mbox",
            "reason": "must be a mailto IRI such as mailto:learner@example.edu",
        },
    }
    public = {"/healthz", "/readyz", "/metrics", "/xapi/about"}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            if path not in public:
                operation["security"] = [{"apiKey": []}]
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for code, response in responses.items():
                if code.startswith(("4", "5")) and "content" not in response:
                    response["content"] = {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                    }
    app.openapi_schema = schema
    return schema


def app_from_environment() -> FastAPI:
    """Build the API from ``TUTORSTREAM_*`` variables (for ``uvicorn --factory``)."""
    return create_app(ApiSettings())
