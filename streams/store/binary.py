"""Fast binary COPY encoding of the store's array columns (``float4[]`` and ``text[]``).

psycopg encodes arrays element by element in Python; a feature vector of 47 floats on every
scored event, and the skill ids on every event and prediction, made that the largest
client-side cost of a write; a batch's vectors can also be packed all at once
(:func:`pack_float4_rows`). Registered by type oid only, these dumpers are used where the
column's type is known (``COPY`` after ``set_types``) and never change how query parameters
are sent.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from psycopg import postgres
from psycopg.abc import AdaptContext
from psycopg.adapt import Dumper
from psycopg.pq import Format

_FLOAT4 = postgres.types["float4"]
_TEXT = postgres.types["text"]
# one element: its length (4) then the big-endian value
_ELEMENT = np.dtype([("length", ">i4"), ("value", ">f4")])
_HEADER_1D = struct.Struct(">iiIii")  # dimensions, has-nulls flag, element oid, size, lower bound
_HEADER_EMPTY = struct.pack(">iiI", 0, 0, _FLOAT4.oid)
_TEXT_EMPTY = struct.pack(">iiI", 0, 0, _TEXT.oid)
_LENGTH = struct.Struct(">i")


class PackedFloat4Array(bytes):
    """A ``float4[]`` value already in PostgreSQL's binary array format.

    Made a batch at a time by :func:`pack_float4_rows`; the COPY dumper sends it as it is.
    """

    def values(self) -> npt.NDArray[np.float32]:
        """Return the numbers (for the JSON path of servers without COPY)."""
        if len(self) <= _HEADER_1D.size:
            return np.zeros(0, dtype=np.float32)
        body = np.frombuffer(self, dtype=_ELEMENT, offset=_HEADER_1D.size)
        return body["value"].astype(np.float32)


def pack_float4_rows(block: npt.NDArray[np.floating[Any]]) -> list[PackedFloat4Array]:
    """Encode each row of a ``[n, k]`` block as a ``float4[]`` value, in one numpy pass."""
    if block.ndim != 2:
        raise ValueError(f"expected a [n, k] block, got shape {block.shape}")
    n, width = block.shape
    if not width:
        return [PackedFloat4Array(_HEADER_EMPTY) for _ in range(n)]
    body = np.empty((n, width), dtype=_ELEMENT)
    body["length"] = 4
    body["value"] = block
    raw = body.tobytes()
    header = _HEADER_1D.pack(1, 0, _FLOAT4.oid, width, 1)
    step = width * _ELEMENT.itemsize
    return [PackedFloat4Array(header + raw[i : i + step]) for i in range(0, n * step, step)]


class Float4ArrayBinaryDumper(Dumper):
    """Binary ``float4[]`` from a sequence of numbers (no NULL elements) in one numpy pass."""

    format = Format.BINARY
    oid = _FLOAT4.array_oid

    def dump(self, obj: Sequence[float] | np.ndarray[Any, Any] | PackedFloat4Array) -> bytes:
        """Return the binary array representation of ``obj``."""
        if type(obj) is PackedFloat4Array:
            return obj
        values = np.asarray(obj, dtype=np.float32)
        if values.ndim != 1:
            raise ValueError(f"a float4[] column takes a flat sequence, got shape {values.shape}")
        if not values.size:
            return _HEADER_EMPTY
        body = np.empty(values.size, dtype=_ELEMENT)
        body["length"] = 4
        body["value"] = values
        return _HEADER_1D.pack(1, 0, _FLOAT4.oid, values.size, 1) + body.tobytes()


class TextArrayBinaryDumper(Dumper):
    """Binary ``text[]`` from a sequence of strings (no NULL elements), such as skill ids."""

    format = Format.BINARY
    oid = _TEXT.array_oid
    # the same few skill lists recur on most rows: encode each once
    _known: ClassVar[dict[tuple[str, ...], bytes]] = {}
    _KNOWN_MAX: ClassVar[int] = 4096

    def dump(self, obj: Sequence[str]) -> bytes:
        """Return the binary array representation of ``obj``."""
        if not obj:
            return _TEXT_EMPTY
        key = tuple(obj)
        found = self._known.get(key)
        if found is None:
            found = self._encode(key)
            if len(self._known) < self._KNOWN_MAX:
                self._known[key] = found
        return found

    @staticmethod
    def _encode(obj: tuple[str, ...]) -> bytes:
        parts = [_HEADER_1D.pack(1, 0, _TEXT.oid, len(obj), 1)]
        for value in obj:
            if type(value) is not str:
                raise TypeError(f"a text[] column takes strings, got {type(value).__name__}")
            encoded = value.encode()
            if b"\x00" in encoded:
                # PostgreSQL text cannot hold NUL; say so here rather than as a server error
                raise ValueError("a text[] element contains a NUL character")
            parts.append(_LENGTH.pack(len(encoded)))
            parts.append(encoded)
        return b"".join(parts)


def register_copy_dumpers(context: AdaptContext) -> None:
    """Use the fast dumpers on ``context`` (a connection) wherever a column's type is known."""
    context.adapters.register_dumper(None, Float4ArrayBinaryDumper)
    context.adapters.register_dumper(None, TextArrayBinaryDumper)
