"""Inbound records as LMSs send them: xAPI statements, Caliper envelopes and native events.

Realistic and distinct (many learners, items, skills and classes), drawn from a seeded
generator: the same ``rng`` state and index give the same record. The normalisation and API
benchmarks measure on them, and producer tests send them. They exercise the formats; simulated
learners with known behaviour come from :mod:`tutorstream.cohort`.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from schemas.caliper import CALIPER_V1P2
from schemas.vocabulary import (
    EXT_ATTEMPT,
    EXT_DIFFICULTY,
    EXT_HINT_COUNT,
    EXT_HINT_LEVEL,
    EXT_SKILLS,
    TUTORSTREAM_XAPI,
    VERB_ANSWERED,
    VERB_ATTEMPTED,
    VERB_COMPLETED,
    VERB_EXPERIENCED,
    VERB_REQUESTED_HINT,
)

_EPOCH: Final = datetime(2024, 9, 2, 8, 0, tzinfo=UTC)
_SKILLS: Final = tuple(
    f"{topic}.{step}"
    for topic in ("fractions", "decimals", "ratios", "equations", "geometry", "probability")
    for step in ("compare", "add", "multiply", "solve", "explain")
)
_XAPI_VERBS: Final = (
    (VERB_ATTEMPTED, 1),
    (VERB_ANSWERED, 5),
    (VERB_REQUESTED_HINT, 1),
    (VERB_COMPLETED, 1),
    (VERB_EXPERIENCED, 1),
)
_CALIPER_ACTIONS: Final = (("Started", 1), ("Completed", 5), ("Skipped", 1))


def _weighted(rng: random.Random, choices: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([choice for choice, _ in choices], [w for _, w in choices])[0]


def _when(rng: random.Random, index: int) -> str:
    moment = _EPOCH + timedelta(seconds=index * 3 + rng.random())
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def xapi_statement(rng: random.Random, index: int) -> dict[str, Any]:
    """Return one realistic xAPI statement as a tutor's LMS would send it."""
    learner = rng.randrange(5000)
    item = rng.randrange(800)
    verb = _weighted(rng, _XAPI_VERBS)
    statement: dict[str, Any] = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "actor": (
            {
                "objectType": "Agent",
                "name": f"Learner {learner}",
                "mbox": f"mailto:learner{learner}@school.example.edu",
            }
            if learner % 2
            else {
                "objectType": "Agent",
                "account": {"homePage": "https://lms.example.edu", "name": f"s{learner:06d}"},
            }
        ),
        "verb": {"id": verb, "display": {"en-US": verb.rsplit("/", 1)[-1]}},
        "object": {
            "objectType": "Activity",
            "id": f"https://lms.example.edu/items/{item}",
            "definition": {
                "name": {"en-US": f"Item {item}"},
                "type": "http://adlnet.gov/expapi/activities/cmi.interaction",
                "interactionType": "fill-in",
                "extensions": {
                    EXT_SKILLS: [_SKILLS[item % len(_SKILLS)], _SKILLS[(item * 7) % len(_SKILLS)]],
                    EXT_DIFFICULTY: round(rng.uniform(-2, 2), 3),
                    EXT_HINT_COUNT: 3,
                },
            },
        },
        "context": {
            "registration": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "contextActivities": {
                "grouping": [
                    {
                        "id": f"https://lms.example.edu/classes/{learner % 40}",
                        "definition": {"type": TUTORSTREAM_XAPI + "activities/class"},
                    }
                ]
            },
            "extensions": {EXT_ATTEMPT: rng.randint(1, 4)},
        },
        "timestamp": _when(rng, index),
    }
    if verb == VERB_ANSWERED:
        correct = rng.random() < 0.6
        statement["result"] = {
            "success": correct,
            "response": str(rng.randrange(100)),
            "duration": f"PT{rng.uniform(2, 90):.2f}S",
            "score": {"scaled": 1.0 if correct else 0.0},
        }
    elif verb == VERB_REQUESTED_HINT:
        statement["result"] = {"extensions": {EXT_HINT_LEVEL: rng.randint(1, 3)}}
    return statement


def caliper_envelope(rng: random.Random, index: int) -> dict[str, Any]:
    """Return one Caliper 1.2 envelope carrying one AssessmentItemEvent."""
    learner = rng.randrange(5000)
    item = rng.randrange(800)
    action = _weighted(rng, _CALIPER_ACTIONS)
    base = "https://lms.example.edu"
    event: dict[str, Any] = {
        "@context": CALIPER_V1P2,
        "id": f"urn:uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}",
        "type": "AssessmentItemEvent",
        "profile": "AssessmentProfile",
        "actor": {"id": f"{base}/users/{learner}", "type": "Person"},
        "action": action,
        "object": {
            "id": f"{base}/assess/{item // 10}/items/{item}",
            "type": "AssessmentItem",
            "name": f"Item {item}",
            "isPartOf": {"id": f"{base}/assess/{item // 10}", "type": "Assessment"},
            "extensions": {EXT_SKILLS: [_SKILLS[item % len(_SKILLS)]], EXT_DIFFICULTY: 0.4},
        },
        "eventTime": _when(rng, index),
        "edApp": {"id": base, "type": "SoftwareApplication"},
        "group": {"id": f"{base}/classes/{learner % 40}", "type": "CourseSection"},
        "session": {"id": f"{base}/sessions/{rng.getrandbits(64):016x}", "type": "Session"},
    }
    if action == "Completed":
        event["generated"] = {
            "id": f"{base}/assess/{item // 10}/items/{item}/users/{learner}/responses/1",
            "type": "FillinBlankResponse",
            "attempt": {
                "id": f"{base}/assess/{item // 10}/items/{item}/users/{learner}/attempts/1",
                "type": "Attempt",
                "count": rng.randint(1, 3),
                "duration": f"PT{rng.randint(2, 90)}S",
            },
            "values": [str(rng.randrange(100))],
        }
    return {
        "sensor": f"{base}/sensors/1",
        "sendTime": event["eventTime"],
        "dataVersion": CALIPER_V1P2,
        "data": [event],
    }


def native_event(rng: random.Random, index: int) -> dict[str, Any]:
    """Return one native event."""
    item = rng.randrange(800)
    return {
        "event_id": f"n-{rng.getrandbits(64):016x}",
        "learner_id": f"s{rng.randrange(5000):06d}",
        "class_id": f"class-{rng.randrange(40)}",
        "item_id": f"item-{item}",
        "skill_ids": [_SKILLS[item % len(_SKILLS)]],
        "event_type": "answer_submit",
        "timestamp": _when(rng, index),
        "correct": rng.random() < 0.6,
        "response": str(rng.randrange(100)),
        "attempt": rng.randint(1, 4),
        "duration_s": round(rng.uniform(2, 90), 2),
    }
