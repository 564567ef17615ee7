from __future__ import annotations

import gzip
import zlib

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from api.edge import Edge

pytestmark = pytest.mark.unit


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"length": len(body), "head": body[:20].decode("latin-1")})


def client(limit: int = 1000) -> TestClient:
    registry = CollectorRegistry()
    app = Starlette(
        routes=[Route("/echo", echo, methods=["POST"]), Route("/xapi/echo", echo, methods=["POST"])]
    )
    wrapped = Edge(
        app,
        max_body_bytes=limit,
        requests=Counter("r", "r", ["method", "route", "status"], registry=registry),
        latency=Histogram("l", "l", ["method", "route"], registry=registry),
    )
    return TestClient(wrapped)


def test_gzip_and_deflate_bodies_are_inflated():
    http = client()
    body = b'{"hello": "world"}'
    assert http.post(
        "/echo", content=gzip.compress(body), headers={"Content-Encoding": "gzip"}
    ).json()["length"] == len(body)
    assert (
        http.post(
            "/echo", content=zlib.compress(body), headers={"Content-Encoding": "deflate"}
        ).json()["head"]
        == body[:20].decode()
    )


def test_bodies_over_the_limit_are_413_before_and_after_inflating():
    http = client(limit=100)
    assert http.post("/echo", content=b"x" * 101).status_code == 413
    bomb = gzip.compress(b"x" * 10_000)
    assert len(bomb) < 100
    refused = http.post("/echo", content=bomb, headers={"Content-Encoding": "gzip"})
    assert refused.status_code == 413
    assert refused.json()["status"] == 413


def test_broken_or_unknown_encodings():
    http = client()
    assert (
        http.post("/echo", content=b"not gzip", headers={"Content-Encoding": "gzip"}).status_code
        == 400
    )
    truncated = gzip.compress(b"x" * 500)[:-10]
    assert (
        http.post("/echo", content=truncated, headers={"Content-Encoding": "gzip"}).status_code
        == 400
    )
    assert http.post("/echo", content=b"x", headers={"Content-Encoding": "br"}).status_code == 415


def test_xapi_responses_carry_the_version_header():
    http = client()
    assert http.post("/xapi/echo", content=b"{}").headers["x-experience-api-version"] == "1.0.3"
    assert "x-experience-api-version" not in http.post("/echo", content=b"{}").headers
