"""Producer styles: the statements each kind of LMS would send for a scripted learner's acts.

Each style writes in its producer's own vocabulary and shapes, and leaves out what that producer
never records. What each style records, and so which scenarios and variants exist in it:

==========  ===============  ========  ==========  =========  ========  =========  ==========
style       retry start      feedback  hints       responses  duration  relation   skill from
==========  ===============  ========  ==========  =========  ========  =========  ==========
tutorstream either           yes       levels      yes        yes       yes        extension
tincan      either           viewed    levels      yes        yes       own ext.   item IRI
h5p         either           no        no          yes        yes       no         parent
moodle      always           review    no          yes        no        no         tag
openedx     never            no        levels      no         no        no         block id
canvas      either           results   no          yes        yes       no         objective
==========  ===============  ========  ==========  =========  ========  =========  ==========

- ``tutorstream``: tutorstream's own verbs and extension IRIs (:mod:`schemas.vocabulary`), the
  reference every mapping is measured against.
- ``tincan``: ADL verbs with the Tin Can registry's ``viewed`` for feedback and hints (each on
  its own activity under the item), the school's own result extension for the hint level, the
  skill in the item IRI (``.../item/<skill>/<n>``) and the course section IRI in
  ``context.contextActivities.grouping``.
- ``h5p``: H5P question sets as H5P's xAPI emits them: ``attempted`` when content is (re)loaded,
  ``interacted`` when the learner changes an answer (before checking it), ``answered`` with
  score, success, response and duration, sub-content ids on the set's embed IRI, the question
  set (one per skill) in ``contextActivities.parent``, the library in ``category``; no feedback
  statements (H5P shows feedback inline) and no tip statements. From H5P's own code:
  ``H5P.XAPIEvent.getContentXAPIId`` (h5p-php-library ``js/h5p-x-api-event.js``) gives a
  sub-content the id ``{content}?subContentId=...`` and ``setObject`` gives ``interacted`` no
  activity type (only ``answered`` gets the interaction definition); ``setActivityStarted``
  (``js/h5p-x-api.js``) sends ``attempted``; ``H5P.MultiChoice`` (``js/multichoice.js``) sends
  ``interacted`` when an option is selected or cleared and nothing when its tip is opened;
  ``H5P.Blanks`` (``js/blanks.js``) sends ``interacted`` on each blank's change, and its tips
  are ``H5P.JoubelUI.createTip`` buttons (``H5P.JoubelTip``, h5p-joubel-ui), which send no
  xAPI at all. So H5P records no hint requests: hint abuse is not written in this style.
- ``moodle``: Moodle's xAPI log store: ``attempted`` on the quiz at each quiz attempt,
  ``answered`` on the question with the quiz as parent, ``completed`` on the quiz, ``viewed`` on
  the attempt's review page for feedback and on pages for resources; site and course in
  ``grouping`` with the Tin Can registry's LMS activity types, the question's tag (the skill) in
  ``contextActivities.other``; no durations on answers and no learner-requested hints.
- ``openedx``: Open edX tracking logs converted by Ralph: ``answered`` for ``problem_check``
  (success and score, no response, no duration), ``interacted`` for a demand hint with the hint
  index and count in the acrossx ``supplemental-info`` and ``total-items`` extensions, the course
  in the object's ``http://adlnet.gov/expapi/activities/course`` extension, the cmi5 session id;
  no start statements and no feedback statements. Skills are read from the block id
  (``block@<skill>_<n>``), the school's naming of its problems, through its producer profile.

The ``tincan``, ``openedx`` and ``canvas`` styles use places of their own (the school's
extension IRIs, its IRI and block naming, its correctness extension); each comes with the
producer profile its integrator writes (``profiles/school-*.yaml``, extending the built-in one),
as ``tutorstream profiles check`` would show is needed. The others are read by the built-in
profile alone.
- ``canvas``: Caliper 1.1 envelopes in Canvas's conventions (one event per envelope, sensor and
  ``edApp`` the instance, ``urn:instructure:canvas:`` ids, the course offering as ``group``,
  ``com.instructure.canvas`` extensions), ``AssessmentItemEvent`` Started and Completed with the
  response as ``generated``, ``NavigationEvent`` to the results page for feedback and to pages
  for resources, ``AssessmentEvent`` Submitted for the quiz; no hints. Canvas's own Caliper
  feed has no per-question events: its documented Caliper events (canvas-lms
  ``doc/api/data_services/json/caliper/event-types/``) report a quiz only as a whole
  (``quiz_submitted``: ``AssessmentEvent`` Submitted on the ``Attempt``; ``grade_change``: a
  ``GradeEvent`` with the submission's score) and carry no correctness per question and no
  outcome ids. This style therefore stands for a per-question Caliper stream from a Canvas
  school's quiz integration: the item's outcome is in the item's ``learningObjectives``, the
  Caliper specification's place (read by the built-in profile), and the answer's correctness
  in the integration's own ``com.instructure.canvas`` extension of the response, read through
  the school's producer profile (``profiles/school-canvas.yaml``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

from inference.lab.scenarios.learners import SKILLS, Scenario, Variant
from inference.lab.scenarios.script import Act, Kind, ScriptedLearner
from schemas import vocabulary as v

_NS: Final = uuid.UUID("6f1c3d4e-1a52-4b7e-9d0a-5c2e8f7a9b10")
ADL: Final = "http://adlnet.gov/expapi/verbs/"
TINCAN_VIEWED: Final = "http://id.tincanapi.com/verb/viewed"
XAPI_PATH: Final = "/xapi/statements"
CALIPER_PATH: Final = "/caliper"


@dataclass(frozen=True, slots=True)
class Statement:
    """One record as the producer sends it.

    Attributes:
        payload: the JSON bytes (an xAPI statement or a Caliper envelope).
        act: index of the act it records in the learner's acts.
        event_id: the id the normaliser gives its event (dedupe key).
        path: the ingest endpoint it is posted to.
        at: the act's time.
    """

    payload: bytes
    act: int
    event_id: str
    path: str
    at: datetime


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _dur(seconds: float) -> str:
    return f"PT{seconds:.2f}S"


def _sid(style: str, learner: str, act: int | str) -> str:
    return str(uuid.uuid5(_NS, f"{style}/{learner}/{act}"))


Render = Callable[[ScriptedLearner, Act, str], dict[str, Any] | list[dict[str, Any]] | None]
"""The statement(s) of one act; a list when the producer sends several (the last is the act's)."""


@dataclass(frozen=True, slots=True)
class Style:
    """A producer's style.

    Attributes:
        name: the style's name.
        records: what the producer records: ``feedback``, ``hints``, ``hint_levels``,
            ``responses``, ``relations``.
        retry_start: ``either`` (as the learner's variant says), ``always`` or ``never``.
        render: the statement of one act (``None``: the producer sends nothing for it; a list:
            several, the act's own last).
        path: the ingest endpoint.
        profile: the producer profile its integrator writes (a file in
            ``inference/lab/scenarios/profiles/``) where the producer uses IRIs of its own;
            ``None``: the built-in profile reads it.
    """

    name: str
    records: frozenset[str]
    retry_start: str
    render: Render
    path: str = XAPI_PATH
    profile: str | None = None

    def profile_path(self) -> Path | None:
        """Return the file of the style's producer profile, if it has one."""
        if self.profile is None:
            return None
        return Path(__file__).with_name("profiles") / f"{self.profile}.yaml"

    def missing(self, scenario: Scenario) -> frozenset[str]:
        """Return what ``scenario`` needs that this producer does not record."""
        return scenario.needs - self.records

    def writes(self, scenario: Scenario, variant: Variant) -> bool:
        """Tell whether this producer can write ``variant`` of ``scenario``.

        Where a scenario varies something the producer does not record (feedback views, hint
        levels) or does one way only (a start before each retry), only the variants the
        producer can write are kept.
        """
        varies = {
            name: len({getattr(w, name) for w in scenario.variants}) > 1
            for name in ("attempted_before_retry", "feedback_views", "hint_levels")
        }
        if (
            varies["attempted_before_retry"]
            and self.retry_start != "either"
            and variant.attempted_before_retry != (self.retry_start == "always")
        ):
            return False
        if varies["feedback_views"] and "feedback" not in self.records and variant.feedback_views:
            return False
        return not (
            varies["hint_levels"] and "hint_levels" not in self.records and variant.hint_levels
        )

    def statements(self, learner: ScriptedLearner) -> tuple[list[Statement], int | None]:
        """Render a learner; return the statements and the index of the onset statement."""
        out: list[Statement] = []
        onset: int | None = None
        for index, act in enumerate(learner.acts):
            if learner.onset_act is not None and onset is None and index >= learner.onset_act:
                onset = len(out)
            if act.kind is Kind.START and act.retry and not self._starts_retry(learner):
                continue
            if act.kind is Kind.FEEDBACK and not learner.feedback_views:
                continue
            sid = _sid(self.name, learner.learner, index)
            body = self.render(learner, act, sid)
            if body is None:
                continue
            # several statements for one act are xAPI statements, each with its own id
            bodies = [(b, str(b["id"])) for b in body] if isinstance(body, list) else [(body, sid)]
            for one, one_id in bodies:
                event_id = one_id if self.path == XAPI_PATH else f"urn:uuid:{one_id}"
                out.append(Statement(orjson.dumps(one), index, event_id, self.path, act.at))
        if onset is not None and onset >= len(out):
            onset = None
        return out, onset

    def _starts_retry(self, learner: ScriptedLearner) -> bool:
        if self.retry_start == "always":
            return True
        if self.retry_start == "never":
            return False
        return learner.attempted_before_retry


# -- tutorstream's own vocabulary -------------------------------------------------------------
_TS_HOME: Final = "https://lms.example.org"
_TS_VERBS: Final = {
    Kind.START: v.VERB_ATTEMPTED,
    Kind.ANSWER: v.VERB_ANSWERED,
    Kind.HINT: v.VERB_REQUESTED_HINT,
    Kind.FEEDBACK: v.VERB_VIEWED_FEEDBACK,
    Kind.RESOURCE: v.VERB_EXPERIENCED,
    Kind.COMPLETE: v.VERB_COMPLETED,
}


def _tutorstream(learner: ScriptedLearner, act: Act, sid: str) -> dict[str, Any]:
    resource = act.kind is Kind.RESOURCE
    object_id = f"{_TS_HOME}/{'resources' if resource else 'items'}/{act.item}"
    definition: dict[str, Any] = {}
    if not resource:
        definition["extensions"] = {v.EXT_SKILLS: [act.skill], v.EXT_HINT_COUNT: act.hint_count}
    statement: dict[str, Any] = {
        "id": sid,
        "actor": {"account": {"homePage": _TS_HOME, "name": learner.learner}},
        "verb": {"id": _TS_VERBS[act.kind]},
        "object": {"id": object_id, "definition": definition} if definition else {"id": object_id},
        "timestamp": _iso(act.at),
    }
    context_ext: dict[str, Any] = {}
    result: dict[str, Any] = {}
    if act.kind is Kind.ANSWER:
        result = {
            "success": act.correct,
            "response": act.response,
            "duration": _dur(act.duration_s or 0),
        }
        context_ext[v.EXT_ATTEMPT] = act.attempt
    elif act.kind is Kind.HINT:
        result = {"duration": _dur(act.duration_s or 0)}
        if learner.hint_levels:
            result["extensions"] = {v.EXT_HINT_LEVEL: act.hint_level}
        else:
            definition.pop("extensions", None)
            statement["object"] = {"id": object_id}
    elif act.kind in (Kind.FEEDBACK, Kind.RESOURCE):
        result = {"duration": _dur(act.duration_s or 0)}
        if act.relation is not None:
            context_ext[v.EXT_RESOURCE_RELATION] = act.relation
    if result:
        statement["result"] = result
    context: dict[str, Any] = {
        "contextActivities": {
            "grouping": [
                {
                    "id": f"{_TS_HOME}/classes/{learner.class_name}",
                    "definition": {"type": v.TUTORSTREAM_XAPI + "activities/class"},
                }
            ]
        }
    }
    if context_ext:
        context["extensions"] = context_ext
    statement["context"] = context
    return statement


# -- ADL + Tin Can registry -------------------------------------------------------------------
_TC_HOME: Final = "https://school.example.edu"
_TC_COURSE: Final = _TC_HOME + "/course/math7"
_TC_EXT: Final = _TC_HOME + "/xapi/ext/"
_TC_TYPE: Final = _TC_HOME + "/xapi/activity-type/"


def _tincan(learner: ScriptedLearner, act: Act, sid: str) -> dict[str, Any]:
    item_iri = f"{_TC_COURSE}/item/{act.skill}/{act.item}"
    question = {
        "id": item_iri,
        "definition": {
            "type": "http://adlnet.gov/expapi/activities/cmi.interaction",
            "interactionType": "fill-in",
            "extensions": {_TC_EXT + "hints-available": act.hint_count},
        },
    }
    result: dict[str, Any] = {}
    context_ext: dict[str, Any] = {}
    if act.kind is Kind.START:
        verb, target = ADL + "attempted", question
    elif act.kind is Kind.ANSWER:
        verb, target = ADL + "answered", question
        result = {
            "success": act.correct,
            "response": act.response,
            "duration": _dur(act.duration_s or 0),
        }
    elif act.kind is Kind.HINT:
        verb = TINCAN_VIEWED
        target = {
            "id": f"{item_iri}/hint/{act.hint_level}",
            "definition": {"type": _TC_TYPE + "hint"},
        }
        result = {"duration": _dur(act.duration_s or 0)}
        if learner.hint_levels:
            result["extensions"] = {_TC_EXT + "hint-level": act.hint_level}
    elif act.kind is Kind.FEEDBACK:
        verb = TINCAN_VIEWED
        target = {"id": f"{item_iri}/feedback", "definition": {"type": _TC_TYPE + "feedback"}}
        result = {"duration": _dur(act.duration_s or 0)}
    elif act.kind is Kind.RESOURCE:
        verb = ADL + "experienced"
        target = {
            "id": f"{_TC_COURSE}/resource/{act.item}",
            "definition": {"type": "http://adlnet.gov/expapi/activities/media"},
        }
        result = {"duration": _dur(act.duration_s or 0)}
        if act.relation is not None:
            context_ext[_TC_EXT + "stance-to-last-answer"] = act.relation
    else:
        verb, target = ADL + "completed", question
    context: dict[str, Any] = {
        "contextActivities": {
            "grouping": [
                {
                    "id": f"{_TC_COURSE}/{learner.class_name}",
                    "definition": {"type": "http://adlnet.gov/expapi/activities/course"},
                }
            ]
        }
    }
    if context_ext:
        context["extensions"] = context_ext
    statement: dict[str, Any] = {
        "id": sid,
        "actor": {"mbox": f"mailto:{learner.learner}@school.example.edu", "objectType": "Agent"},
        "verb": {"id": verb, "display": {"en-US": verb.rsplit("/", 1)[1]}},
        "object": dict(target, objectType="Activity"),
        "context": context,
        "timestamp": _iso(act.at),
    }
    if result:
        statement["result"] = result
    return statement


# -- H5P --------------------------------------------------------------------------------------
_H5P_HOME: Final = "https://h5p.school.example.org"


def _h5p(
    learner: ScriptedLearner, act: Act, sid: str
) -> dict[str, Any] | list[dict[str, Any]] | None:
    if act.kind in (Kind.FEEDBACK, Kind.RESOURCE, Kind.HINT):
        # H5P shows feedback inline, knows nothing of the course's pages, and sends nothing
        # when a tip is opened
        return None
    set_id = 40 + SKILLS.index(act.skill)
    embed = f"{_H5P_HOME}/h5p/embed/{set_id}"
    sub = str(uuid.uuid5(_NS, f"h5p/{act.item}"))
    target: dict[str, Any] = {
        "id": f"{embed}?subContentId={sub}",
        "objectType": "Activity",
        "definition": {
            "extensions": {
                "http://h5p.org/x-api/h5p-local-content-id": set_id,
                "http://h5p.org/x-api/h5p-subContentId": sub,
            },
            "name": {"en-US": f"Question {act.item}"},
            "interactionType": "fill-in",
            "type": "http://adlnet.gov/expapi/activities/cmi.interaction",
        },
    }
    result: dict[str, Any] = {}
    if act.kind is Kind.START:
        verb = ADL + "attempted"
    elif act.kind is Kind.ANSWER:
        verb = ADL + "answered"
        result = {
            "score": {
                "min": 0,
                "max": 1,
                "raw": int(bool(act.correct)),
                "scaled": float(bool(act.correct)),
            },
            "completion": True,
            "success": act.correct,
            "response": act.response,
            "duration": _dur(act.duration_s or 0),
        }
    else:
        verb = ADL + "completed"
    statement = {
        "id": sid,
        "actor": {
            "account": {"homePage": _H5P_HOME, "name": learner.learner},
            "objectType": "Agent",
        },
        "verb": {"id": verb, "display": {"en-US": verb.rsplit("/", 1)[1]}},
        "object": target,
        "context": {
            "contextActivities": {
                "parent": [
                    {
                        "id": embed,
                        "objectType": "Activity",
                        "definition": {"name": {"en-US": act.skill}},
                    }
                ],
                "category": [
                    {
                        "id": "http://h5p.org/libraries/H5P.QuestionSet-1.20",
                        "objectType": "Activity",
                    }
                ],
                "grouping": [
                    {"id": f"{_H5P_HOME}/course/{learner.class_name}", "objectType": "Activity"}
                ],
            }
        },
        **({"result": result} if result else {}),
        "timestamp": _iso(act.at),
    }
    if act.kind is not Kind.ANSWER:
        return statement
    # the answer entered (an option chosen, a blank filled) before it is checked: H5P's
    # `interacted`, on an object without the interaction definition `answered` gets
    changed = dict(statement, id=str(uuid.uuid5(_NS, f"h5p-interacted/{sid}")))
    changed["verb"] = {"id": ADL + "interacted", "display": {"en-US": "interacted"}}
    changed["object"] = {
        "id": target["id"],
        "objectType": "Activity",
        "definition": {
            "extensions": target["definition"]["extensions"],
            "name": target["definition"]["name"],
        },
    }
    changed.pop("result", None)
    changed["timestamp"] = _iso(act.at - timedelta(seconds=min(1.0, (act.duration_s or 0) / 2)))
    return [changed, statement]


# -- Moodle's xAPI log store ------------------------------------------------------------------
_MOODLE: Final = "https://moodle.school.example.org"
_LMS_TYPE: Final = "http://id.tincanapi.com/activitytype/lms"


def _moodle(learner: ScriptedLearner, act: Act, sid: str) -> dict[str, Any] | None:
    if act.kind is Kind.HINT:
        return None  # Moodle's quiz shows hints itself; the learner does not ask for them
    quiz = {
        "id": f"{_MOODLE}/mod/quiz/view.php?id={500 + act.item}",
        "definition": {
            "type": "http://adlnet.gov/expapi/activities/assessment",
            "name": {"en": f"Practice {act.item}"},
        },
    }
    question = {
        "id": f"{_MOODLE}/question/question.php?id={9000 + act.item}",
        "definition": {
            "type": "http://adlnet.gov/expapi/activities/cmi.interaction",
            "interactionType": "fill-in",
        },
    }
    result: dict[str, Any] = {}
    parent: list[dict[str, Any]] = []
    if act.kind is Kind.START:
        verb, target = ADL + "attempted", quiz
    elif act.kind is Kind.ANSWER:
        verb, target, parent = ADL + "answered", question, [quiz]
        result = {
            "success": act.correct,
            "response": act.response,
            "score": {"raw": int(bool(act.correct)), "min": 0, "max": 1},
        }
    elif act.kind is Kind.FEEDBACK:
        verb = TINCAN_VIEWED
        target = {
            "id": f"{_MOODLE}/mod/quiz/review.php?attempt={act.item}",
            "definition": {"type": "http://id.tincanapi.com/activitytype/review"},
        }
        parent = [quiz]
    elif act.kind is Kind.RESOURCE:
        verb = TINCAN_VIEWED
        target = {
            "id": f"{_MOODLE}/mod/page/view.php?id={act.item}",
            "definition": {"type": _LMS_TYPE + "/module"},
        }
    else:
        verb, target = ADL + "completed", quiz
    activities: dict[str, Any] = {
        "grouping": [
            {"id": _MOODLE, "definition": {"type": _LMS_TYPE}},
            {
                "id": f"{_MOODLE}/course/view.php?id={learner.class_name}",
                "definition": {"type": _LMS_TYPE + "/course"},
            },
        ],
        "category": [
            {
                "id": "http://moodle.org",
                "definition": {"type": "http://id.tincanapi.com/activitytype/source"},
            }
        ],
        "other": [
            {
                "id": f"{_MOODLE}/tag/index.php?tag={act.skill}",
                "definition": {"type": "http://id.tincanapi.com/activitytype/tag"},
            }
        ],
    }
    if parent:
        activities["parent"] = parent
    return {
        "id": sid,
        "actor": {
            "name": learner.learner,
            "account": {"homePage": _MOODLE, "name": learner.learner},
        },
        "verb": {"id": verb, "display": {"en": verb.rsplit("/", 1)[1]}},
        "object": target,
        "context": {
            "platform": "Moodle",
            "language": "en",
            "extensions": {
                "http://lrs.learninglocker.net/define/extensions/info": {
                    "https://moodle.org/": "4.3",
                    "event_name": f"{act.kind}",
                }
            },
            "contextActivities": activities,
        },
        **({"result": result} if result else {}),
        "timestamp": _iso(act.at),
    }


# -- Open edX through Ralph -------------------------------------------------------------------
_EDX: Final = "https://lms.openedx.example.org"
_ACROSSX: Final = "https://w3id.org/xapi/acrossx/extensions/"


def _openedx(learner: ScriptedLearner, act: Act, sid: str) -> dict[str, Any] | None:
    if act.kind not in (Kind.ANSWER, Kind.HINT):
        return None  # no start, feedback, page or completion statement for a problem
    run = f"2026{learner.class_name[-1]}"
    block = f"block-v1:SchoolX+MATH7+{run}+type@problem+block@{act.skill}_{act.item}"
    extensions = {
        "https://w3id.org/xapi/acrossx/extensions/school": "SchoolX",
        "http://adlnet.gov/expapi/activities/course": "MATH7",
        "http://adlnet.gov/expapi/activities/module": run,
    }
    statement: dict[str, Any] = {
        "id": sid,
        "actor": {"account": {"homePage": _EDX, "name": learner.learner}},
        "timestamp": _iso(act.at),
        "context": {
            "extensions": {
                "https://w3id.org/xapi/cmi5/context/extensions/sessionid": str(
                    uuid.uuid5(_NS, f"edx-session/{learner.learner}")
                )
            },
            "contextActivities": {
                "category": [
                    {
                        "id": "https://w3id.org/xapi/acrossx",
                        "definition": {"type": "http://adlnet.gov/expapi/activities/profile"},
                    }
                ]
            },
        },
    }
    if act.kind is Kind.ANSWER:
        statement["verb"] = {"id": ADL + "answered"}
        statement["object"] = {
            "id": f"{_EDX}/xblock/{block}",
            "definition": {
                "type": "http://adlnet.gov/expapi/activities/cmi.interaction",
                "interactionType": "other",
                "extensions": extensions,
            },
        }
        statement["result"] = {
            "success": act.correct,
            "score": {
                "raw": int(bool(act.correct)),
                "min": 0,
                "max": 1,
                "scaled": float(bool(act.correct)),
            },
        }
    else:
        statement["verb"] = {"id": ADL + "interacted"}
        hint_ext: dict[str, Any] = dict(extensions)
        hint_ext[_ACROSSX + "supplemental-info"] = (act.hint_level or 1) - 1
        hint_ext[_ACROSSX + "total-items"] = act.hint_count
        statement["object"] = {
            "id": f"{_EDX}/{block}",
            "definition": {
                "type": "http://adlnet.gov/expapi/activities/cmi.interaction",
                "interactionType": "other",
                "extensions": hint_ext,
            },
        }
    return statement


# -- Canvas, Caliper 1.1 ----------------------------------------------------------------------
_CANVAS: Final = "https://canvas.school.example.org"
_CALIPER_11: Final = "http://purl.imsglobal.org/ctx/caliper/v1p1"


def _canvas(learner: ScriptedLearner, act: Act, sid: str) -> dict[str, Any] | None:
    if act.kind is Kind.HINT:
        return None  # Canvas quizzes have no learner-requested hints
    course = f"urn:instructure:canvas:course:{learner.class_name[-1]}00"
    user = f"urn:instructure:canvas:user:{uuid.uuid5(_NS, learner.learner).int % 10**12}"
    quiz = f"{_CANVAS}/courses/{learner.class_name[-1]}00/quizzes/{700 + act.item}"
    item = {
        "id": f"{quiz}/questions/{act.item}",
        "type": "AssessmentItem",
        "isPartOf": {"id": quiz, "type": "Assessment"},
        "learningObjectives": [
            {
                "id": f"urn:instructure:canvas:learning_outcome:{SKILLS.index(act.skill) + 1}",
                "type": "LearningObjective",
            }
        ],
    }
    event: dict[str, Any] = {
        "@context": _CALIPER_11,
        "id": f"urn:uuid:{sid}",
        "actor": {"id": user, "type": "Person"},
        "eventTime": _iso(act.at),
        "edApp": {"id": _CANVAS, "type": "SoftwareApplication"},
        "group": {"id": course, "type": "CourseOffering"},
        "extensions": {
            "com.instructure.canvas": {"hostname": "canvas.school.example.org", "request_id": sid}
        },
    }
    if act.kind is Kind.START:
        event.update(type="AssessmentItemEvent", action="Started", object=item)
    elif act.kind is Kind.ANSWER:
        event.update(type="AssessmentItemEvent", action="Completed", object=item)
        event["generated"] = {
            "id": f"{quiz}/submissions/{sid}",
            "type": "FillinBlankResponse",
            "value": act.response,
            "duration": _dur(act.duration_s or 0),
            "extensions": {"com.instructure.canvas": {"correct": act.correct}},
        }
    elif act.kind is Kind.FEEDBACK:
        event.update(
            type="NavigationEvent",
            action="NavigatedTo",
            object={"id": f"{quiz}/history", "type": "WebPage"},
        )
    elif act.kind is Kind.RESOURCE:
        event.update(
            type="NavigationEvent",
            action="NavigatedTo",
            object={"id": f"{_CANVAS}/courses/1/pages/p{act.item}", "type": "WebPage"},
        )
    else:
        event.update(
            type="AssessmentEvent", action="Submitted", object={"id": quiz, "type": "Assessment"}
        )
    return {
        "sensor": _CANVAS,
        "sendTime": _iso(act.at),
        "dataVersion": _CALIPER_11,
        "data": [event],
    }


STYLES: tuple[Style, ...] = (
    Style(
        "tutorstream",
        frozenset({"feedback", "hints", "hint_levels", "responses", "relations"}),
        "either",
        _tutorstream,
    ),
    Style(
        "tincan",
        frozenset({"feedback", "hints", "hint_levels", "responses", "relations"}),
        "either",
        _tincan,
        profile="school-tincan",
    ),
    Style("h5p", frozenset({"responses"}), "either", _h5p),
    Style("moodle", frozenset({"feedback", "responses"}), "always", _moodle),
    Style(
        "openedx", frozenset({"hints", "hint_levels"}), "never", _openedx, profile="school-openedx"
    ),
    Style(
        "canvas",
        frozenset({"feedback", "responses"}),
        "either",
        _canvas,
        CALIPER_PATH,
        profile="school-canvas",
    ),
)
"""Every producer style."""

STYLE_NAMES: tuple[str, ...] = tuple(s.name for s in STYLES)
