"""Contracts of tutorstream: inbound formats, the normalised event, outbound records, topics."""

from schemas.events import EventType, LearningEvent, ResourceRelation, SourceFormat
from schemas.exceptions import InvalidEvent, SchemaError

__all__ = [
    "EventType",
    "InvalidEvent",
    "LearningEvent",
    "ResourceRelation",
    "SchemaError",
    "SourceFormat",
]
