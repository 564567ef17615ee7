"""The xAPI 1.0.3 statement resource: what the LRS does with statements, apart from HTTP.

Statements are validated by :mod:`schemas.xapi` (the specification's rules). Accepted ones are
produced to ``lms.events.v1`` as sent (plus their id), keyed by the learner's pseudonym, and
stored pseudonymised: every Agent and Group in a stored statement is reduced to an ``account``
whose name is the pseudonym, so no name, email or other identifier reaches the database.

Statements the pipeline cannot use (a verb it does not read, a Group as actor, a voiding
statement) are still valid xAPI: the LRS accepts and stores them like any other, and the stream
worker's dead-letter topic says why each was not turned into a learning event.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
import orjson
from msgspec import UNSET

from api.exceptions import BadRequest
from schemas import xapi
from schemas.events import UnmodelledEvent
from schemas.exceptions import InvalidEvent
from schemas.formats import is_language_tag, parse_timestamp
from schemas.normalise import parse_json
from schemas.profiles.compiled import CompiledProfile
from schemas.pseudonym import Pseudonymiser
from schemas.vocabulary import VERB_VOIDED

STATEMENT_VERSION: Final = "1.0.0"
SIGNATURE_USAGE: Final = "http://adlnet.gov/expapi/attachments/signature"
_AGENT_KEYS: Final = ("mbox", "mbox_sha1sum", "openid", "account")


@dataclass(frozen=True, slots=True)
class Accepted:
    """A valid statement, ready to be produced and stored.

    Attributes:
        statement_id: its id (given, or a new UUID assigned by the LRS), lower case.
        key: the learner's pseudonym, the record's key on ``lms.events.v1``.
        raw: the statement as sent, with its id, as JSON for the topic.
        stored: the pseudonymised statement, with ``stored``, ``authority`` and ``version``.
        voids: the id of the statement it voids, when it is a voiding statement.
        unmodelled: the verb of a valid statement the model does not use (stored and counted),
            ``None`` for a modelled one.
    """

    statement_id: str
    key: bytes
    raw: bytes
    stored: dict[str, Any]
    voids: str | None
    unmodelled: str | None = None


def check_version(value: str | None) -> None:
    """Check the ``X-Experience-API-Version`` header of a statement request.

    Raises:
        BadRequest: when it is missing or not 1.0 / 1.0.x.
    """
    if value is None:
        raise BadRequest(
            "is required: send X-Experience-API-Version: 1.0.3",
            "header.X-Experience-API-Version",
        )
    text = value.strip()
    if text == "1.0" or (text.startswith("1.0.") and text[4:].isdigit()):
        return
    raise BadRequest(
        f"{text[:20]!r} is not supported; this LRS speaks xAPI 1.0.x (send 1.0.3)",
        "header.X-Experience-API-Version",
    )


def decode(body: bytes) -> tuple[list[xapi.Statement], bool]:
    """Decode a body holding one statement or an array of them, checking their structure.

    Returns:
        The typed statements and whether the body was an array.

    Raises:
        InvalidEvent: naming the first property that breaks a structural rule.
    """
    try:
        statements, is_array = xapi.decode_statements(body)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        pass
    else:
        if not statements:
            raise InvalidEvent("", "the array holds no statements", xapi.SOURCE)
        return statements, is_array
    parsed = parse_json(body)
    if type(parsed) is list:
        if not parsed:
            raise InvalidEvent("", "the array holds no statements", xapi.SOURCE)
        return [xapi.typed_statement(entry, f"[{i}]") for i, entry in enumerate(parsed)], True
    return [xapi.typed_statement(parsed)], False


class StatementPreparer:
    """Turns decoded statements into :class:`Accepted` ones.

    Args:
        pseudonymiser: keyed with ``TUTORSTREAM_PSEUDONYM_KEY``.
        public_url: base URL of the API; home page of the pseudonym accounts and the authority.
    """

    def __init__(self, pseudonymiser: Pseudonymiser, public_url: str) -> None:
        self.pseudonymiser = pseudonymiser
        base = public_url.rstrip("/")
        self.learner_home = f"{base}/learners"
        self.authority_home = f"{base}/keys"

    def prepare(
        self,
        statements: list[xapi.Statement],
        *,
        is_array: bool,
        key_id: str,
        stored: datetime,
        statement_id: str | None = None,
        profile: CompiledProfile | None = None,
    ) -> list[Accepted]:
        """Validate every statement and build what is produced and stored.

        Args:
            statements: from :func:`decode`.
            is_array: whether they came as an array (error paths then start with ``[i]``).
            key_id: the sending key; the stored statements' authority.
            stored: when they are stored.
            statement_id: the ``statementId`` of a PUT, which the statement's id must match.
            profile: the sending key's statement profile (the built-in one when ``None``).

        Raises:
            InvalidEvent: for the first statement that breaks a rule, or two statements with
                one id.
        """
        accepted: list[Accepted] = []
        seen: dict[str, int] = {}
        stamp = stored.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        for index, statement in enumerate(statements):
            path = f"[{index}]" if is_array else ""
            if statement_id is not None:
                if statement.id is not UNSET and statement.id.lower() != statement_id:
                    raise InvalidEvent(
                        "id", "does not match the statementId parameter", xapi.SOURCE
                    )
                statement.id = statement_id
            elif statement.id is UNSET:
                # The LRS sets the id (Data 2.4.1): a new statement each time, even with content
                # like another's, since a learner can do the same thing twice.
                statement.id = str(uuid.uuid4())
            if statement.timestamp is UNSET:
                # The LRS sets the timestamp to the stored time (Data 2.4.7); the worker orders
                # a learner's events by it, so the record on the topic carries it too.
                statement.timestamp = stamp
            key, unmodelled = self._key(statement, path, profile)
            sid = xapi.statement_id(statement)
            if sid in seen:
                raise InvalidEvent(
                    f"{path}.id" if path else "id",
                    f"repeats the id of statement [{seen[sid]}]; ids in a batch must differ",
                    xapi.SOURCE,
                )
            seen[sid] = index
            statement.id = sid
            raw = msgspec.json.encode(statement)
            record = self._stored(msgspec.to_builtins(statement), key_id, stamp)
            voids = None
            if statement.verb.id == VERB_VOIDED and statement.object.id is not UNSET:
                voids = statement.object.id.lower()
            accepted.append(Accepted(sid, key.encode(), raw, record, voids, unmodelled))
        return accepted

    def _key(
        self, statement: xapi.Statement, path: str, profile: CompiledProfile | None
    ) -> tuple[str, str | None]:
        """Return the learner's pseudonym, and the verb when the model does not use it.

        The normaliser validates and maps in one pass; a statement it cannot map (no timestamp
        yet: the LRS gives it the stored time) is validated on its own, and when it is valid
        xAPI its actor's pseudonym keys it all the same.
        """
        try:
            event = xapi.normalise_statement(statement, self.pseudonymiser, path, profile)
        except InvalidEvent:
            xapi.validate_statement(statement, path)
        else:
            if isinstance(event, UnmodelledEvent):
                return event.learner_id, event.verb
            return event.learner_id, None
        actor = statement.actor
        if actor.objectType == "Group" and _ifi(actor) is None and actor.member:
            actor = actor.member[0]
        found = _ifi(actor)
        return self.pseudonymiser.xapi_identifier(**found) if found else "anonymous", None

    def pseudonym_account(self, agent: Mapping[str, Any]) -> dict[str, str] | None:
        """Return the pseudonym account of an Agent or identified Group (parsed JSON)."""
        try:
            name = self.pseudonymiser.xapi_agent(agent)
        except ValueError:
            return None
        return {"homePage": self.learner_home, "name": name}

    def _agent(self, agent: Any) -> Any:
        if type(agent) is not dict:
            return agent
        out: dict[str, Any] = {}
        if "objectType" in agent:
            out["objectType"] = agent["objectType"]
        if any(key in agent for key in _AGENT_KEYS):
            account = self.pseudonym_account(agent)
            if account is not None:
                out["account"] = account
        if type(agent.get("member")) is list:
            out["member"] = [self._agent(member) for member in agent["member"]]
        return out

    def _body(self, body: dict[str, Any]) -> dict[str, Any]:
        """Pseudonymise every Agent and Group of a statement or SubStatement, in place."""
        if "actor" in body:
            body["actor"] = self._agent(body["actor"])
        target = body.get("object")
        if type(target) is dict:
            kind = target.get("objectType")
            if kind in ("Agent", "Group"):
                body["object"] = self._agent(target)
            elif kind == "SubStatement":
                self._body(target)
        context = body.get("context")
        if type(context) is dict:
            for role in ("instructor", "team"):
                if role in context:
                    context[role] = self._agent(context[role])
            activities = context.get("contextActivities")
            if type(activities) is dict:
                # The LRS returns every context activity list as an array (Data 2.4.6.2).
                for name, value in activities.items():
                    if type(value) is dict:
                        activities[name] = [value]
        return body

    def _stored(self, statement: dict[str, Any], key_id: str, stamp: str) -> dict[str, Any]:
        record = self._body(statement)
        record["stored"] = stamp
        # The LRS sets the timestamp to the stored time when the statement has none.
        record.setdefault("timestamp", stamp)
        record["authority"] = {
            "objectType": "Agent",
            "account": {"homePage": self.authority_home, "name": key_id},
        }
        record.setdefault("version", STATEMENT_VERSION)
        return record


def _ifi(agent: xapi.Agent) -> dict[str, str] | None:
    if agent.mbox is not UNSET:
        return {"mbox": agent.mbox}
    if agent.account is not UNSET:
        return {"home_page": agent.account.homePage, "account_name": agent.account.name}
    if agent.mbox_sha1sum is not UNSET:
        return {"mbox_sha1sum": agent.mbox_sha1sum}
    if agent.openid is not UNSET:
        return {"openid": agent.openid}
    return None


# ---------------------------------------------------------------------- comparison


def _instant(value: Any) -> Any:
    if type(value) is not str:
        return value
    try:
        return parse_timestamp(value, "", None).isoformat()
    except InvalidEvent:
        return value


def _without_definitions(activities: Any) -> Any:
    if type(activities) is list:
        return [_without_definitions(activity) for activity in activities]
    if type(activities) is dict:
        return {key: value for key, value in activities.items() if key != "definition"}
    return activities


def _comparable(statement: dict[str, Any], *, top: bool = True) -> dict[str, Any]:
    """Drop what the comparison ignores; see :func:`same_statement`."""
    assigned = ("stored", "authority", "version", "timestamp", "id") if top else ()
    out = {key: value for key, value in statement.items() if key not in assigned}
    verb = out.get("verb")
    if type(verb) is dict:
        out["verb"] = {"id": verb.get("id")}
    target = out.get("object")
    if type(target) is dict:
        kind = target.get("objectType", "Activity")
        if kind == "Activity":
            out["object"] = _without_definitions(target)
        elif kind == "SubStatement":
            out["object"] = _comparable(target, top=False)
        elif kind == "StatementRef":
            out["object"] = {**target, "id": str(target.get("id", "")).lower()}
        elif type(target.get("member")) is list:
            out["object"] = _unordered_members(target)
    context = out.get("context")
    if type(context) is dict and type(context.get("contextActivities")) is dict:
        out["context"] = {
            **context,
            "contextActivities": {
                name: _without_definitions(value)
                for name, value in context["contextActivities"].items()
            },
        }
    actor = out.get("actor")
    if type(actor) is dict and type(actor.get("member")) is list:
        out["actor"] = _unordered_members(actor)
    return out


def _unordered_members(group: dict[str, Any]) -> dict[str, Any]:
    members = sorted(
        orjson.dumps(member, option=orjson.OPT_SORT_KEYS).decode() for member in group["member"]
    )
    return {**group, "member": members}


def same_statement(existing: dict[str, Any], incoming: dict[str, Any]) -> bool:
    """Return whether two stored (pseudonymised) statements match by the comparison rules.

    Differences the specification lists as exceptions to immutability are ignored: ``id``,
    ``stored``, ``authority`` and ``version`` (assigned by the LRS), the serialisation of
    ``timestamp`` (compared as instants), Activity definitions and Verb display, the order of a
    Group's members.
    """
    if _instant(existing.get("timestamp")) != _instant(incoming.get("timestamp")):
        return False
    first = orjson.dumps(_comparable(existing), option=orjson.OPT_SORT_KEYS)
    second = orjson.dumps(_comparable(incoming), option=orjson.OPT_SORT_KEYS)
    return first == second


# ---------------------------------------------------------------------- formats


def _ids_agent(agent: Any) -> Any:
    if type(agent) is not dict:
        return agent
    out = {key: agent[key] for key in ("objectType", *_AGENT_KEYS) if key in agent}
    if type(agent.get("member")) is list and not any(key in agent for key in _AGENT_KEYS):
        out["member"] = [_ids_agent(member) for member in agent["member"]]
    return out


def _ids_activity(activity: Any) -> Any:
    """An Activity in the ``ids`` format is its id alone (Communication 2.1.3)."""
    if type(activity) is not dict:
        return activity
    return {"id": activity["id"]} if "id" in activity else {}


def _ids_body(body: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    if "actor" in out:
        out["actor"] = _ids_agent(out["actor"])
    if type(out.get("verb")) is dict:
        out["verb"] = {"id": out["verb"].get("id")}
    target = out.get("object")
    if type(target) is dict:
        kind = target.get("objectType", "Activity")
        if kind == "Activity":
            out["object"] = _ids_activity(target)
        elif kind in ("Agent", "Group"):
            out["object"] = _ids_agent(target)
        elif kind == "SubStatement":
            out["object"] = _ids_body(target)
    context = out.get("context")
    if type(context) is dict:
        context = dict(context)
        for role in ("instructor", "team"):
            if role in context:
                context[role] = _ids_agent(context[role])
        activities = context.get("contextActivities")
        if type(activities) is dict:
            context["contextActivities"] = {
                name: [_ids_activity(a) for a in value]
                if type(value) is list
                else _ids_activity(value)
                for name, value in activities.items()
            }
        out["context"] = context
    if "authority" in out:
        out["authority"] = _ids_agent(out["authority"])
    return out


def accepted_languages(header: str | None) -> list[str]:
    """Return the languages of an ``Accept-Language`` header, most wanted first."""
    if not header:
        return []
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, position, tag.strip().lower()))
    return [tag for _, _, tag in sorted(ranked)]


def _pick(language_map: Any, languages: list[str]) -> Any:
    if type(language_map) is not dict or not language_map:
        return language_map
    lowered = {tag.lower(): tag for tag in language_map}
    for wanted in languages:
        if wanted == "*":
            break
        if wanted in lowered:
            return {lowered[wanted]: language_map[lowered[wanted]]}
        for tag_lower, tag in lowered.items():
            if tag_lower.split("-")[0] == wanted.split("-")[0]:
                return {tag: language_map[tag]}
    first = next(iter(language_map))
    return {first: language_map[first]}


def _canonical_definition(definition: Any, languages: list[str]) -> Any:
    if type(definition) is not dict:
        return definition
    out = dict(definition)
    for name in ("name", "description"):
        if name in out:
            out[name] = _pick(out[name], languages)
    for name in ("choices", "scale", "source", "target", "steps"):
        if type(out.get(name)) is list:
            out[name] = [
                {**c, "description": _pick(c["description"], languages)}
                if type(c) is dict and "description" in c
                else c
                for c in out[name]
            ]
    return out


def _canonical_body(body: dict[str, Any], languages: list[str]) -> dict[str, Any]:
    out = dict(body)
    verb = out.get("verb")
    if type(verb) is dict and "display" in verb:
        out["verb"] = {**verb, "display": _pick(verb["display"], languages)}
    target = out.get("object")
    if type(target) is dict:
        kind = target.get("objectType", "Activity")
        if kind == "Activity" and "definition" in target:
            out["object"] = {
                **target,
                "definition": _canonical_definition(target["definition"], languages),
            }
        elif kind == "SubStatement":
            out["object"] = _canonical_body(target, languages)
    context = out.get("context")
    if type(context) is dict and type(context.get("contextActivities")) is dict:
        out["context"] = {
            **context,
            "contextActivities": {
                name: [_canonical_activity(a, languages) for a in value]
                if type(value) is list
                else _canonical_activity(value, languages)
                for name, value in context["contextActivities"].items()
            },
        }
    return out


def _canonical_activity(activity: Any, languages: list[str]) -> Any:
    if type(activity) is not dict or "definition" not in activity:
        return activity
    return {**activity, "definition": _canonical_definition(activity["definition"], languages)}


def formatted(statement: dict[str, Any], form: str, accept_language: str | None) -> dict[str, Any]:
    """Return a stored statement in the ``format`` asked for: ``exact``, ``ids``, ``canonical``."""
    if form == "ids":
        return _ids_body(statement)
    if form == "canonical":
        languages = [
            tag for tag in accepted_languages(accept_language) if tag == "*" or is_language_tag(tag)
        ]
        return _canonical_body(statement, languages)
    return statement


# ---------------------------------------------------------------------- query cursors


def encode_more(query: dict[str, Any], stored: datetime, statement_id: str) -> str:
    """Return the token of the next page of a statement query."""
    state = {**query, "after": [stored.isoformat(), statement_id]}
    return base64.urlsafe_b64encode(orjson.dumps(state)).decode().rstrip("=")


def decode_more(token: str) -> tuple[dict[str, Any], tuple[datetime, str]]:
    """Read a next-page token back into its query and position.

    Raises:
        BadRequest: when the token was not made by :func:`encode_more`.
    """
    try:
        padded = token + "=" * (-len(token) % 4)
        state = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
        stored_text, statement_id = state.pop("after")
        stored = datetime.fromisoformat(stored_text)
        if type(statement_id) is not str or type(state) is not dict:
            raise ValueError("malformed")
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError, KeyError) as err:
        raise BadRequest("is not a token this LRS made", "query.cursor") from err
    return state, (stored, statement_id)
