"""Fast binary COPY encoding of the store's ``float4[]`` columns.

psycopg encodes arrays element by element in Python; a feature vector of 47 floats on every
scored event made that the largest client-side cost of a write. Registered by type oid only,
this dumper is used where the column's type is known (``COPY`` after ``set_types``) and never
changes how query parameters are sent.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
from psycopg import postgres
from psycopg.abc import AdaptContext
from psycopg.adapt import Dumper
from psycopg.pq import Format

_FLOAT4 = postgres.types["float4"]
# one element: its length (4) then the big-endian value
_ELEMENT = np.dtype([("length", ">i4"), ("value", ">f4")])
_HEADER_1D = struct.Struct(">iiIii")  # dimensions, has-nulls flag, element oid, size, lower bound
_HEADER_EMPTY = struct.pack(">iiI", 0, 0, _FLOAT4.oid)


class Float4ArrayBinaryDumper(Dumper):
    """Binary ``float4[]`` from a sequence of numbers (no NULL elements) in one numpy pass."""

    format = Format.BINARY
    oid = _FLOAT4.array_oid

    def dump(self, obj: Sequence[float] | np.ndarray[Any, Any]) -> bytes:
        """Return the binary array representation of ``obj``."""
        values = np.asarray(obj, dtype=np.float32)
        if values.ndim != 1:
            raise ValueError(f"a float4[] column takes a flat sequence, got shape {values.shape}")
        if not values.size:
            return _HEADER_EMPTY
        body = np.empty(values.size, dtype=_ELEMENT)
        body["length"] = 4
        body["value"] = values
        return _HEADER_1D.pack(1, 0, _FLOAT4.oid, values.size, 1) + body.tobytes()


def register_copy_dumpers(context: AdaptContext) -> None:
    """Use the fast dumpers on ``context`` (a connection) wherever a column's type is known."""
    context.adapters.register_dumper(None, Float4ArrayBinaryDumper)
