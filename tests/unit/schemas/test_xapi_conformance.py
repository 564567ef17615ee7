"""One case per statement-format requirement of xAPI 1.0.3, each with its exact 400 path and reason.

The requirement ids (XAPI-000nn) are those of the ADL LRS conformance requirements; the table in
docs/xapi-conformance.md points here. Every case is checked twice: on the parsed statement, and
through the statement resource's own path (JSON bytes decoded, validated and prepared), which is
what a POST or PUT answers with 400.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
import pytest

from api.statements import StatementPreparer, decode
from schemas.exceptions import InvalidEvent
from schemas.pseudonym import Pseudonymiser
from schemas.xapi import validate_statement

pytestmark = pytest.mark.unit

DELETE = object()
PREPARER = StatementPreparer(
    Pseudonymiser(b"unit-test-pseudonym-key-0123456789abcdef"), "https://lrs.example"
)


class Rule(NamedTuple):
    requirement: str
    what: str
    where: str
    value: Any
    path: str
    reason: str
    context: dict[str, Any] | None = None


def base() -> dict[str, Any]:
    return {
        "id": "0b5b8b4c-2a6e-4c39-9d1b-6f8a3c2e1d00",
        "actor": {"objectType": "Agent", "mbox": "mailto:learner@example.com"},
        "verb": {
            "id": "http://adlnet.gov/expapi/verbs/attempted",
            "display": {"en-US": "attempted"},
        },
        "object": {"objectType": "Activity", "id": "http://example.com/activities/a"},
        "timestamp": "2024-03-01T10:15:00Z",
    }


def broken(rule: Rule) -> dict[str, Any]:
    statement = base()
    if rule.context is not None:
        statement["context"] = dict(rule.context)
    *parents, last = rule.where.split(".")
    node = statement
    for key in parents:
        node = node.setdefault(key, {})
    if rule.value is DELETE:
        del node[last]
    else:
        node[last] = copy.deepcopy(rule.value)
    return statement


RULES = [
    Rule(
        "XAPI-00003", "a statement has an actor (Data 2.2)", "actor", DELETE, "actor", "is required"
    ),
    Rule("XAPI-00004", "a statement has a verb (Data 2.2)", "verb", DELETE, "verb", "is required"),
    Rule(
        "XAPI-00005",
        "a statement has an object (Data 2.2)",
        "object",
        DELETE,
        "object",
        "is required",
    ),
    Rule(
        "XAPI-00001",
        "null only inside extensions (Data 2.2)",
        "verb.display",
        None,
        "verb.display",
        "must be an object, not null (null is only allowed in extensions)",
    ),
    Rule(
        "XAPI-00006",
        "values have the right data type (Data 2.2)",
        "result",
        {"success": "yes"},
        "result.success",
        "must be true or false, got string",
    ),
    Rule(
        "XAPI-00007",
        "no empty string where a format is required (Data 2.2)",
        "verb.id",
        "",
        "verb.id",
        "'' is not an absolute IRI (it needs a scheme such as https:)",
    ),
    Rule(
        "XAPI-00008",
        "keys are case-sensitive (Data 2.2)",
        "actor.Mbox",
        "mailto:x@example.com",
        "actor.Mbox",
        "is not a property xAPI defines here (property names are case-sensitive)",
    ),
    Rule(
        "XAPI-00009",
        "enumerated values are case-sensitive (Data 2.2)",
        "object.objectType",
        "activity",
        "object.objectType",
        "must be one of Activity, Agent, Group, StatementRef, SubStatement (case-sensitive)",
    ),
    Rule(
        "XAPI-00010",
        "language tags follow RFC 5646 (Data 2.2)",
        "verb.display",
        {"en-": "x"},
        'verb.display["en-"]',
        "'en-' is not an RFC 5646 language tag",
    ),
    Rule(
        "XAPI-00011",
        "IRIs have a scheme (Data 2.2)",
        "verb.id",
        "example.com/verbs/no-scheme",
        "verb.id",
        "'example.com/verbs/no-scheme' is not an absolute IRI (it needs a scheme such as https:)",
    ),
    Rule(
        "XAPI-00027",
        "UUIDs follow RFC 4122 (Data 2.4.1)",
        "id",
        "2c5c8b4c-2a6e-4c39-9d1b-6f8a3c2e1d0z",
        "id",
        "'2c5c8b4c-2a6e-4c39-9d1b-6f8a3c2e1d0z' is not a UUID in standard form "
        "(8-4-4-4-12 hex digits)",
    ),
    Rule(
        "XAPI-00028",
        "UUIDs are in standard string form (Data 2.4.1)",
        "id",
        "0b5b8b4c2a6e4c399d1b6f8a3c2e1d00",
        "id",
        "'0b5b8b4c2a6e4c399d1b6f8a3c2e1d00' is not a UUID in standard form (8-4-4-4-12 hex digits)",
    ),
    Rule(
        "XAPI-00031",
        "actor objectType is Agent or Group (Data 2.4.2)",
        "actor.objectType",
        "Person",
        "actor.objectType",
        "must be 'Agent' or 'Group' (case-sensitive)",
    ),
    Rule(
        "XAPI-00032",
        "objectType is a string (Data 2.4.2.1)",
        "actor.objectType",
        1,
        "actor.objectType",
        "must be a string, got integer",
    ),
    Rule(
        "XAPI-00033",
        "name is a string (Data 2.4.2.1)",
        "actor.name",
        ["x"],
        "actor.name",
        "must be a string, got array",
    ),
    Rule(
        "XAPI-00034-none",
        "an Agent has an IFI (Data 2.4.2.1)",
        "actor",
        {"objectType": "Agent", "name": "nobody"},
        "actor",
        "an Agent must have exactly one of mbox, mbox_sha1sum, openid, account; found 0",
    ),
    Rule(
        "XAPI-00034-two",
        "an Agent has exactly one IFI (Data 2.4.2.1)",
        "actor",
        {"mbox": "mailto:a@example.com", "openid": "http://openid.example.com/a"},
        "actor",
        "an Agent must have exactly one of mbox, mbox_sha1sum, openid, account; found 2",
    ),
    Rule(
        "XAPI-00035",
        "an anonymous Group has members (Data 2.4.2.2)",
        "actor",
        {"objectType": "Group", "name": "anonymous, no members"},
        "actor",
        "a Group without mbox, mbox_sha1sum, openid or account is anonymous and must list its "
        "members in 'member'",
    ),
    Rule(
        "XAPI-00036",
        "Group members follow the Agent rules (Data 2.4.2.2)",
        "actor",
        {"objectType": "Group", "member": [{"objectType": "Agent"}]},
        "actor.member[0]",
        "an Agent must have exactly one of mbox, mbox_sha1sum, openid, account; found 0",
    ),
    Rule(
        "XAPI-00037",
        "an identified Group has exactly one IFI (Data 2.4.2.2)",
        "actor",
        {
            "objectType": "Group",
            "mbox": "mailto:g@example.com",
            "account": {"homePage": "http://example.com", "name": "g"},
        },
        "actor",
        "an identified Group must have exactly one IFI; found 2",
    ),
    Rule(
        "XAPI-00038",
        "mbox is a mailto IRI (Data 2.4.2.3)",
        "actor.mbox",
        "learner@example.com",
        "actor.mbox",
        "must be a mailto IRI such as mailto:learner@example.edu",
    ),
    Rule(
        "XAPI-00039",
        "mbox_sha1sum is a string (Data 2.4.2.3)",
        "actor",
        {"mbox_sha1sum": 123},
        "actor.mbox_sha1sum",
        "must be a string, got integer",
    ),
    Rule(
        "XAPI-00040",
        "openid is a URI (Data 2.4.2.3)",
        "actor",
        {"openid": "not a uri"},
        "actor.openid",
        "'not a uri' is not an absolute IRI (it needs a scheme such as https:)",
    ),
    Rule(
        "XAPI-00042-missing",
        "an account has a homePage (Data 2.4.2.4)",
        "actor",
        {"account": {"name": "x"}},
        "actor.account.homePage",
        "is required",
    ),
    Rule(
        "XAPI-00042-iri",
        "an account homePage is an IRL (Data 2.4.2.4)",
        "actor",
        {"account": {"homePage": "example.com", "name": "x"}},
        "actor.account.homePage",
        "'example.com' is not an absolute IRI (it needs a scheme such as https:)",
    ),
    Rule(
        "XAPI-00043",
        "an account has a name (Data 2.4.2.4)",
        "actor",
        {"account": {"homePage": "http://example.com"}},
        "actor.account.name",
        "is required",
    ),
    Rule(
        "XAPI-00044-missing",
        "a verb has an id (Data 2.4.3)",
        "verb.id",
        DELETE,
        "verb.id",
        "is required",
    ),
    Rule(
        "XAPI-00045",
        "verb display is a language map (Data 2.4.3)",
        "verb.display",
        {"en-US": 5},
        'verb.display["en-US"]',
        "must be a string, got integer",
    ),
    Rule(
        "XAPI-00046",
        "object objectType is one of five (Data 2.4.4)",
        "object.objectType",
        "Thing",
        "object.objectType",
        "must be one of Activity, Agent, Group, StatementRef, SubStatement (case-sensitive)",
    ),
    Rule(
        "XAPI-00047",
        "an Activity has an id (Data 2.4.4.1)",
        "object.id",
        DELETE,
        "object.id",
        "is required (the activity's IRI)",
    ),
    Rule(
        "XAPI-00048",
        "an Activity definition is an object (Data 2.4.4.1)",
        "object.definition",
        "text",
        "object.definition",
        "must be an object, got string",
    ),
    Rule(
        "XAPI-00056",
        "definition name is a language map (Data 2.4.4.1)",
        "object.definition",
        {"name": "text"},
        "object.definition.name",
        "must be an object, got string",
    ),
    Rule(
        "XAPI-00059",
        "definition description is a language map (Data 2.4.4.1)",
        "object.definition",
        {"description": {"not a tag!": "x"}},
        'object.definition.description["not a tag!"]',
        "'not a tag!' is not an RFC 5646 language tag",
    ),
    Rule(
        "XAPI-00060",
        "definition type is an IRI (Data 2.4.4.1)",
        "object.definition",
        {"type": "not an iri"},
        "object.definition.type",
        "'not an iri' is not an absolute IRI (it needs a scheme such as https:)",
    ),
    Rule(
        "XAPI-00061",
        "definition moreInfo is an IRL (Data 2.4.4.1)",
        "object.definition",
        {"moreInfo": "not an irl"},
        "object.definition.moreInfo",
        "'not an irl' is not an absolute IRI (it needs a scheme such as https:)",
    ),
    Rule(
        "XAPI-00057",
        "definition extensions is an object (Data 2.4.4.1)",
        "object.definition",
        {"extensions": []},
        "object.definition.extensions",
        "must be an object, got array",
    ),
    Rule(
        "XAPI-00062",
        "interactionType is one of the ten, case-sensitive (Data 2.4.4.1)",
        "object.definition",
        {"interactionType": "Choice"},
        "object.definition.interactionType",
        "must be one of choice, fill-in, likert, long-fill-in, matching, numeric, other, "
        "performance, sequencing, true-false (case-sensitive)",
    ),
    Rule(
        "XAPI-00063",
        "interaction properties need interactionType (Data 2.4.4.1)",
        "object.definition",
        {"choices": [{"id": "a"}]},
        "object.definition.choices",
        "belongs to interaction activities: add interactionType",
    ),
    Rule(
        "XAPI-00064",
        "component lists fit the interactionType (Data 2.4.4.1)",
        "object.definition",
        {"interactionType": "likert", "choices": [{"id": "a"}]},
        "object.definition.choices",
        "is not used by interactionType 'likert' (it uses scale)",
    ),
    Rule(
        "XAPI-00065",
        "an Agent or Group object states its objectType (Data 2.4.4.2)",
        "object",
        {"mbox": "mailto:o@example.com"},
        "object.mbox",
        "is not a property of an Activity",
    ),
    Rule(
        "XAPI-00066",
        "a SubStatement follows the statement rules (Data 2.4.4.3)",
        "object",
        {
            "objectType": "SubStatement",
            "actor": {"mbox": "mailto:s@example.com"},
            "verb": {"id": "not an iri"},
            "object": {"id": "http://example.com/a2"},
        },
        "object.verb.id",
        "'not an iri' is not an absolute IRI (it needs a scheme such as https:)",
    ),
    Rule(
        "XAPI-00067",
        "a SubStatement has no authority (Data 2.4.4.3)",
        "object",
        {
            "objectType": "SubStatement",
            "actor": {"mbox": "mailto:s@example.com"},
            "verb": {"id": "http://example.com/verbs/planned"},
            "object": {"id": "http://example.com/a2"},
            "authority": {"objectType": "Agent", "mbox": "mailto:learner@example.com"},
        },
        "object.authority",
        "is not allowed in a SubStatement",
    ),
    Rule(
        "XAPI-00068",
        "a SubStatement has no version (Data 2.4.4.3)",
        "object",
        {
            "objectType": "SubStatement",
            "actor": {"mbox": "mailto:s@example.com"},
            "verb": {"id": "http://example.com/verbs/planned"},
            "object": {"id": "http://example.com/a2"},
            "version": "1.0.0",
        },
        "object.version",
        "is not allowed in a SubStatement",
    ),
    Rule(
        "XAPI-00069",
        "a SubStatement has no stored (Data 2.4.4.3)",
        "object",
        {
            "objectType": "SubStatement",
            "actor": {"mbox": "mailto:s@example.com"},
            "verb": {"id": "http://example.com/verbs/planned"},
            "object": {"id": "http://example.com/a2"},
            "stored": "2024-03-01T10:15:00Z",
        },
        "object.stored",
        "is not allowed in a SubStatement",
    ),
    Rule(
        "XAPI-00070",
        "a SubStatement has no id (Data 2.4.4.3)",
        "object",
        {
            "objectType": "SubStatement",
            "actor": {"mbox": "mailto:s@example.com"},
            "verb": {"id": "http://example.com/verbs/planned"},
            "object": {"id": "http://example.com/a2"},
            "id": "0b5b8b4c-2a6e-4c39-9d1b-6f8a3c2e1d01",
        },
        "object.id",
        "is not allowed in a SubStatement",
    ),
    Rule(
        "XAPI-00071",
        "a SubStatement holds no SubStatement (Data 2.4.4.3)",
        "object",
        {
            "objectType": "SubStatement",
            "actor": {"mbox": "mailto:s@example.com"},
            "verb": {"id": "http://example.com/verbs/planned"},
            "object": {
                "objectType": "SubStatement",
                "actor": {"mbox": "mailto:s@example.com"},
                "verb": {"id": "http://example.com/verbs/planned"},
                "object": {"id": "http://example.com/a2"},
            },
        },
        "object.object.objectType",
        "a SubStatement cannot contain another SubStatement",
    ),
    Rule(
        "XAPI-00072-missing",
        "a StatementRef has an id (Data 2.4.4.3)",
        "object",
        {"objectType": "StatementRef"},
        "object.id",
        "is required (the UUID of the referenced statement)",
    ),
    Rule(
        "XAPI-00072-uuid",
        "a StatementRef id is a UUID (Data 2.4.4.3)",
        "object",
        {"objectType": "StatementRef", "id": "not-a-uuid"},
        "object.id",
        "'not-a-uuid' is not a UUID in standard form (8-4-4-4-12 hex digits)",
    ),
    Rule(
        "XAPI-00074",
        "success is a boolean (Data 2.4.5)",
        "result",
        {"success": "true"},
        "result.success",
        "must be true or false, got string",
    ),
    Rule(
        "XAPI-00075",
        "completion is a boolean (Data 2.4.5)",
        "result",
        {"completion": 1},
        "result.completion",
        "must be true or false, got integer",
    ),
    Rule(
        "XAPI-00076",
        "response is a string (Data 2.4.5)",
        "result",
        {"response": 1},
        "result.response",
        "must be a string, got integer",
    ),
    Rule(
        "XAPI-00077",
        "duration is ISO 8601 (Data 2.4.5)",
        "result",
        {"duration": "1 hour"},
        "result.duration",
        "must be an ISO 8601 duration such as PT1M30.5S (P[n]Y[n]M[n]DT[n]H[n]M[n]S or P[n]W)",
    ),
    Rule(
        "XAPI-00078",
        "result extensions is an object (Data 2.4.5)",
        "result",
        {"extensions": "x"},
        "result.extensions",
        "must be an object, got string",
    ),
    Rule(
        "XAPI-00079",
        "score is an object (Data 2.4.5.1)",
        "result",
        {"score": 0.5},
        "result.score",
        "must be an object, got number",
    ),
    Rule(
        "XAPI-00083",
        "scaled is between -1 and 1 (Data 2.4.5.1)",
        "result",
        {"score": {"scaled": -1.5}},
        "result.score.scaled",
        "must be between -1 and 1, got -1.5",
    ),
    Rule(
        "XAPI-00082",
        "raw is between min and max (Data 2.4.5.1)",
        "result",
        {"score": {"raw": 5, "min": 6}},
        "result.score.raw",
        "must not be below min (5.0 < 6.0)",
    ),
    Rule(
        "XAPI-00081",
        "min is less than max (Data 2.4.5.1)",
        "result",
        {"score": {"min": 10, "max": 1}},
        "result.score.min",
        "must be less than max (10.0 is not < 1.0)",
    ),
    Rule(
        "XAPI-00080",
        "max is a number (Data 2.4.5.1)",
        "result",
        {"score": {"max": "10"}},
        "result.score.max",
        "must be a number, got string",
    ),
    Rule(
        "XAPI-00087-1",
        "registration is a UUID (Data 2.4.6)",
        "context",
        {"registration": "not-a-uuid"},
        "context.registration",
        "'not-a-uuid' is not a UUID in standard form (8-4-4-4-12 hex digits)",
    ),
    Rule(
        "XAPI-00087-2",
        "instructor is an Agent (Data 2.4.6)",
        "context",
        {"instructor": {"name": "no ifi"}},
        "context.instructor",
        "an Agent must have exactly one of mbox, mbox_sha1sum, openid, account; found 0",
    ),
    Rule(
        "XAPI-00088",
        "team is a Group (Data 2.4.6)",
        "context",
        {"team": {"mbox": "mailto:t@example.com"}},
        "context.team.objectType",
        "a team must be a Group (objectType 'Group')",
    ),
    Rule(
        "XAPI-00086",
        "contextActivities is an object (Data 2.4.6)",
        "context",
        {"contextActivities": []},
        "context.contextActivities",
        "must be an object, got array",
    ),
    Rule(
        "XAPI-00089",
        "revision is a string (Data 2.4.6)",
        "context",
        {"revision": 2},
        "context.revision",
        "must be a string, got integer",
    ),
    Rule(
        "XAPI-00084-revision",
        "revision only with an Activity object (Data 2.4.6)",
        "object",
        {"objectType": "Agent", "mbox": "mailto:o@example.com"},
        "context.revision",
        "is only allowed when the statement's object is an Activity",
        context={"revision": "1"},
    ),
    Rule(
        "XAPI-00090",
        "platform is a string (Data 2.4.6)",
        "context",
        {"platform": False},
        "context.platform",
        "must be a string, got true or false",
    ),
    Rule(
        "XAPI-00085-platform",
        "platform only with an Activity object (Data 2.4.6)",
        "object",
        {"objectType": "Agent", "mbox": "mailto:o@example.com"},
        "context.platform",
        "is only allowed when the statement's object is an Activity",
        context={"platform": "web"},
    ),
    Rule(
        "XAPI-00091",
        "language is a string (Data 2.4.6)",
        "context",
        {"language": 5},
        "context.language",
        "must be a string, got integer",
    ),
    Rule(
        "XAPI-00092",
        "context statement is a StatementRef (Data 2.4.6)",
        "context",
        {"statement": {"objectType": "Activity", "id": "0b5b8b4c-2a6e-4c39-9d1b-6f8a3c2e1d01"}},
        "context.statement.objectType",
        "must be 'StatementRef'",
    ),
    Rule(
        "XAPI-00093",
        "contextActivities keys are parent, grouping, category, other (Data 2.4.6.2)",
        "context",
        {"contextActivities": {"parents": [{"id": "http://example.com/p"}]}},
        "context.contextActivities.parents",
        "is not a property xAPI defines here (property names are case-sensitive)",
    ),
    Rule(
        "XAPI-00094",
        "contextActivities values are Activities (Data 2.4.6.2)",
        "context",
        {"contextActivities": {"parent": [{"id": "not an iri"}]}},
        "context.contextActivities.parent[0].id",
        "'not an iri' is not an absolute IRI (it needs a scheme such as https:)",
    ),
    Rule(
        "XAPI-00022",
        "timestamp is a valid ISO 8601 timestamp (Data 2.4.7)",
        "timestamp",
        "2024-13-01T10:15:00Z",
        "timestamp",
        "'2024-13-01T10:15:00Z' is not a valid date and time: month must be in 1..12",
    ),
    Rule(
        "XAPI-00023",
        "stored is a timestamp (Data 2.4.8)",
        "stored",
        "yesterday",
        "stored",
        "'yesterday' is not an ISO 8601 timestamp (expected e.g. 2024-03-01T10:15:00.000Z)",
    ),
    Rule(
        "XAPI-00024",
        "authority is an Agent or Group (Data 2.4.9)",
        "authority",
        {"objectType": "Activity", "id": "http://example.com/a"},
        "authority.id",
        "is not a property xAPI defines here (property names are case-sensitive)",
    ),
    Rule(
        "XAPI-00098-three",
        "a Group authority has exactly two Agents (Data 2.4.9)",
        "authority",
        {
            "objectType": "Group",
            "member": [
                {"mbox": "mailto:a@example.com"},
                {"mbox": "mailto:b@example.com"},
                {"mbox": "mailto:c@example.com"},
            ],
        },
        "authority",
        "a Group as authority is only for 3-legged OAuth: an anonymous Group of exactly two Agents",
    ),
    Rule(
        "XAPI-00098-identified",
        "a Group authority is anonymous (Data 2.4.9)",
        "authority",
        {
            "objectType": "Group",
            "mbox": "mailto:g@example.com",
            "member": [{"mbox": "mailto:a@example.com"}, {"mbox": "mailto:b@example.com"}],
        },
        "authority",
        "a Group as authority is only for 3-legged OAuth: an anonymous Group of exactly two Agents",
    ),
    Rule(
        "XAPI-00100",
        "version is 1.0 or 1.0.x (Data 2.4.10)",
        "version",
        "1.1.0",
        "version",
        "must be 1.0 or 1.0.x (this is xAPI 1.0.3)",
    ),
    Rule(
        "XAPI-00025",
        "attachments is an array (Data 2.4.11)",
        "attachments",
        {"usageType": "http://example.com/u"},
        "attachments",
        "must be an array, got object",
    ),
    Rule(
        "XAPI-00107",
        "usageType is an IRI (Data 2.4.11)",
        "attachments",
        [
            {
                "usageType": "not an iri",
                "display": {"en-US": "a"},
                "contentType": "text/plain",
                "length": 1,
                "sha2": "abababababababababababababababababababababababababababababababab",
            }
        ],
        "attachments[0].usageType",
        "'not an iri' is not an absolute IRI (it needs a scheme such as https:)",
    ),
    Rule(
        "XAPI-00105",
        "contentType is a media type (Data 2.4.11)",
        "attachments",
        [
            {
                "usageType": "http://example.com/u",
                "display": {"en-US": "a"},
                "contentType": "not a type",
                "length": 1,
                "sha2": "abababababababababababababababababababababababababababababababab",
            }
        ],
        "attachments[0].contentType",
        "must be an Internet media type such as text/plain",
    ),
    Rule(
        "XAPI-00102",
        "length is an integer (Data 2.4.11)",
        "attachments",
        [
            {
                "usageType": "http://example.com/u",
                "display": {"en-US": "a"},
                "contentType": "text/plain",
                "length": 1.5,
                "sha2": "abababababababababababababababababababababababababababababababab",
            }
        ],
        "attachments[0].length",
        "must be an integer, got number",
    ),
    Rule(
        "XAPI-00103",
        "sha2 is a string (Data 2.4.11)",
        "attachments",
        [
            {
                "usageType": "http://example.com/u",
                "display": {"en-US": "a"},
                "contentType": "text/plain",
                "length": 1,
                "sha2": 5,
            }
        ],
        "attachments[0].sha2",
        "must be a string, got integer",
    ),
    Rule(
        "XAPI-00104",
        "fileUrl is an IRL (Data 2.4.11)",
        "attachments",
        [
            {
                "usageType": "http://example.com/u",
                "display": {"en-US": "a"},
                "contentType": "text/plain",
                "length": 1,
                "sha2": "abababababababababababababababababababababababababababababababab",
                "fileUrl": "not an irl",
            }
        ],
        "attachments[0].fileUrl",
        "'not an irl' is not an absolute IRI (it needs a scheme such as https:)",
    ),
    Rule(
        "XAPI-00106",
        "attachment display is a language map (Data 2.4.11)",
        "attachments",
        [
            {
                "usageType": "http://example.com/u",
                "display": "a",
                "contentType": "text/plain",
                "length": 1,
                "sha2": "abababababababababababababababababababababababababababababababab",
            }
        ],
        "attachments[0].display",
        "must be an object, got string",
    ),
    Rule(
        "XAPI-00118",
        "extension keys are IRIs (Data 4.1)",
        "context",
        {"extensions": {"not an iri": 1}},
        'context.extensions["not an iri"]',
        "extension keys must be IRIs",
    ),
    Rule(
        "XAPI-00121",
        "language maps follow RFC 5646 (Data 4.2)",
        "verb.display",
        {"en_US": "x"},
        "verb.display.en_US",
        "'en_US' is not an RFC 5646 language tag",
    ),
    Rule(
        "XAPI-00123",
        "timestamps are ISO 8601 with a zone (Data 4.5)",
        "timestamp",
        "2024-03-01 10:15",
        "timestamp",
        "timestamp '2024-03-01 10:15' has no time zone; add 'Z' or an offset such as +01:00",
    ),
    Rule(
        "XAPI-00124",
        "durations are ISO 8601 durations (Data 4.6)",
        "result",
        {"duration": "P1H"},
        "result.duration",
        "must be an ISO 8601 duration such as PT1M30.5S (P[n]Y[n]M[n]DT[n]H[n]M[n]S or P[n]W)",
    ),
]


@pytest.mark.parametrize("rule", RULES, ids=[rule.requirement for rule in RULES])
def test_each_requirement_is_refused_with_its_path_and_reason(rule: Rule) -> None:
    statement = broken(rule)
    with pytest.raises(InvalidEvent) as parsed:
        validate_statement(statement)
    assert (parsed.value.path, parsed.value.reason) == (rule.path, rule.reason), rule.what
    with pytest.raises(InvalidEvent) as posted:
        statements, is_array = decode(orjson.dumps(statement))
        PREPARER.prepare(statements, is_array=is_array, key_id="k", stored=datetime.now(UTC))
    assert (posted.value.path, posted.value.reason) == (rule.path, rule.reason), rule.what


def test_the_base_statement_is_valid() -> None:
    validate_statement(base())
    for rule in RULES:
        if rule.context is not None:
            statement = base()
            statement["context"] = dict(rule.context)
            validate_statement(statement)
