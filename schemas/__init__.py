"""Contracts of tutorstream: inbound formats, the normalised event, outbound records, topics."""

from schemas.events import EventType, LearningEvent, ResourceRelation, SourceFormat
from schemas.exceptions import InvalidEvent, SchemaError
from schemas.normalise import normalise
from schemas.pseudonym import Pseudonymiser
from schemas.records import (
    BehaviouralState,
    DeadLetter,
    FeatureVector,
    Intervention,
    LearnerPrompt,
    Prediction,
    Recommendation,
)

__all__ = [
    "BehaviouralState",
    "DeadLetter",
    "EventType",
    "FeatureVector",
    "Intervention",
    "InvalidEvent",
    "LearnerPrompt",
    "LearningEvent",
    "Prediction",
    "Pseudonymiser",
    "Recommendation",
    "ResourceRelation",
    "SchemaError",
    "SourceFormat",
    "normalise",
]
