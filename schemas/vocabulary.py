"""The IRIs tutorstream reads: xAPI verbs, activity types, and its own extension keys.

Producers put what a tutor needs to know about an item or an action into these extensions. The
same keys serve xAPI (in the place named below) and Caliper (in the event's ``extensions``, or the
object's ``extensions`` for what describes the item).

=================================  ==============================  ===============================
extension IRI                      xAPI place                      value
=================================  ==============================  ===============================
``EXT_SKILLS``                     object.definition.extensions    array of skill id strings
``EXT_DIFFICULTY``                 object.definition.extensions    number (LMS's own scale)
``EXT_HINT_COUNT``                 object.definition.extensions    integer >= 1, hints the item has
``EXT_ATTEMPT``                    context.extensions              integer >= 1
``EXT_HINT_LEVEL``                 result.extensions               integer >= 0 (bottom-out = max)
``EXT_RESOURCE_RELATION``          context.extensions              ``supports`` | ``contradicts``
                                                                   | ``neutral``
``EXT_CORRECT``                    (Caliper only) extensions       boolean, correctness of answer
``EXT_FEEDBACK_FOR``               (Caliper only) extensions       IRI of the item the feedback
                                                                   viewed belongs to
``EXT_HINT_LEVEL`` on a Caliper    event extensions                marks a ToolUseEvent as a hint
ToolUseEvent                                                       request
=================================  ==============================  ===============================
"""

from __future__ import annotations

from typing import Final

from schemas.events import EventType

ADL_VERBS: Final = "http://adlnet.gov/expapi/verbs/"
VIDEO: Final = "https://w3id.org/xapi/video/"
TUTORSTREAM_XAPI: Final = "https://tutorstream.dev/xapi/"

VERB_ATTEMPTED: Final = ADL_VERBS + "attempted"
VERB_ANSWERED: Final = ADL_VERBS + "answered"
VERB_COMPLETED: Final = ADL_VERBS + "completed"
VERB_PASSED: Final = ADL_VERBS + "passed"
VERB_FAILED: Final = ADL_VERBS + "failed"
VERB_EXPERIENCED: Final = ADL_VERBS + "experienced"
VERB_INTERACTED: Final = ADL_VERBS + "interacted"
VERB_VOIDED: Final = ADL_VERBS + "voided"
VERB_PLAYED: Final = VIDEO + "verbs/played"
VERB_PAUSED: Final = VIDEO + "verbs/paused"
VERB_SEEKED: Final = VIDEO + "verbs/seeked"
VERB_REQUESTED_HINT: Final = TUTORSTREAM_XAPI + "verbs/requested-hint"
"""The learner asked for a hint on the item (the statement's object)."""
VERB_VIEWED_FEEDBACK: Final = TUTORSTREAM_XAPI + "verbs/viewed-feedback"
"""The learner opened the feedback on their answer to the item (the statement's object)."""

XAPI_VERB_EVENT_TYPES: Final[dict[str, EventType]] = {
    VERB_ATTEMPTED: EventType.PROBLEM_START,
    VERB_ANSWERED: EventType.ANSWER_SUBMIT,
    VERB_COMPLETED: EventType.PROBLEM_COMPLETE,
    VERB_PASSED: EventType.PROBLEM_COMPLETE,
    VERB_FAILED: EventType.PROBLEM_COMPLETE,
    VERB_EXPERIENCED: EventType.RESOURCE_VIEW,
    VERB_INTERACTED: EventType.RESOURCE_VIEW,
    VERB_PLAYED: EventType.MEDIA_PLAY,
    VERB_PAUSED: EventType.MEDIA_PAUSE,
    VERB_SEEKED: EventType.MEDIA_SEEK,
    VERB_REQUESTED_HINT: EventType.HINT_REQUEST,
    VERB_VIEWED_FEEDBACK: EventType.FEEDBACK_VIEW,
}
"""The core verbs and how the built-in statement profile maps them (``completed`` on a video
activity is :attr:`EventType.MEDIA_COMPLETE` instead). The profile
(``schemas/profiles/builtin.yaml``) is what the normaliser reads, with many more verbs; a test
keeps this table and it in step."""

VIDEO_ACTIVITY_TYPE: Final = VIDEO + "activity-type/video"
VIDEO_SESSION_ID: Final = VIDEO + "extensions/session-id"

CLASS_ACTIVITY_TYPE: Final = TUTORSTREAM_XAPI + "activities/class"
"""Marks a ``contextActivities.grouping`` entry as the learner's class (the built-in profile also
takes the ADL, cmi5 and Tin Can course types; failing those, the first grouping activity)."""

EXT_SKILLS: Final = TUTORSTREAM_XAPI + "extensions/skills"
EXT_DIFFICULTY: Final = TUTORSTREAM_XAPI + "extensions/difficulty"
EXT_HINT_COUNT: Final = TUTORSTREAM_XAPI + "extensions/hint-count"
EXT_ATTEMPT: Final = TUTORSTREAM_XAPI + "extensions/attempt"
EXT_HINT_LEVEL: Final = TUTORSTREAM_XAPI + "extensions/hint-level"
EXT_RESOURCE_RELATION: Final = TUTORSTREAM_XAPI + "extensions/resource-relation"
EXT_CORRECT: Final = TUTORSTREAM_XAPI + "extensions/correct"
EXT_FEEDBACK_FOR: Final = TUTORSTREAM_XAPI + "extensions/feedback-for"
