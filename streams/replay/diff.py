"""How a rescore differs from the live tables: per-state agreement and alerts raised differently.

A rescore (:mod:`streams.replay.rebuild`) writes the predictions and interventions of another
model version into a shadow schema. :func:`compare` sets them against a base schema (the live
tables, or another shadow schema) over the events both have scored:

- per behavioural state, *fires* means the prediction's detected ``state`` is that state;
  agreement is the share of events where both versions agree whether it fires, and precision
  and recall take the base version as the reference (precision: of the events where the
  shadow fires, the share where the base fires too; recall: of the events where the base
  fires, the share where the shadow fires too);
- interventions are matched by decision event, learner and state; a learner and state with an
  intervention on one side and not the other would have been alerted differently.

Only events scored on both sides count, so a rescore of part of history (one class, a time
range) is compared with the same part of the live tables; events scored on one side only are
counted apart. The joins and counts run in the database, which holds the rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from schemas.records import BehaviouralState
from streams.replay.exceptions import ReplayDiffError
from streams.store.connection import check_schema, connect


@dataclass(frozen=True, slots=True)
class StateAgreement:
    """How the two versions compare on one state.

    Attributes:
        state: the behavioural state.
        scored: events scored by both versions.
        base_fires: events where the base version detects the state.
        shadow_fires: events where the shadow version detects it.
        both_fire: events where both detect it.
        agreement: share of scored events where both agree whether the state fires.
        precision: ``both_fire / shadow_fires``; ``None`` when the shadow never fires.
        recall: ``both_fire / base_fires``; ``None`` when the base never fires.
    """

    state: str
    scored: int
    base_fires: int
    shadow_fires: int
    both_fire: int
    agreement: float | None
    precision: float | None
    recall: float | None


@dataclass(frozen=True, slots=True)
class AlertDifference:
    """A learner and state whose interventions differ between the versions.

    Attributes:
        learner_id: the pseudonymous learner.
        state: the behavioural state.
        only_base: interventions the base version raised and the shadow did not.
        only_shadow: interventions the shadow version raised and the base did not.
    """

    learner_id: str
    state: str
    only_base: int
    only_shadow: int


@dataclass(slots=True)
class ReplayDiff:
    """What :func:`compare` found.

    Attributes:
        base: the base schema.
        shadow: the shadow schema.
        class_id: the class compared, or ``None`` for all.
        base_versions: model versions in the base's predictions of the compared events.
        shadow_versions: the same for the shadow.
        scored: events scored by both.
        base_only: events scored by the base only.
        shadow_only: events scored by the shadow only.
        states: per-state agreement, in the order of :class:`BehaviouralState`.
        interventions_base: interventions of the base on the compared events.
        interventions_shadow: interventions of the shadow on the compared events.
        interventions_only_base: those of the base with no match in the shadow.
        interventions_only_shadow: those of the shadow with no match in the base.
        alerted_differently: learner and state pairs with any unmatched intervention.
        learners_alerted_differently: learners among them.
        differences: the pairs, most unmatched first, at most ``limit`` of them.
    """

    base: str
    shadow: str
    class_id: str | None = None
    base_versions: list[str] = field(default_factory=list)
    shadow_versions: list[str] = field(default_factory=list)
    scored: int = 0
    base_only: int = 0
    shadow_only: int = 0
    states: list[StateAgreement] = field(default_factory=list)
    interventions_base: int = 0
    interventions_shadow: int = 0
    interventions_only_base: int = 0
    interventions_only_shadow: int = 0
    alerted_differently: int = 0
    learners_alerted_differently: int = 0
    differences: list[AlertDifference] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready data."""
        return asdict(self)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _scope(base: str, shadow: str) -> sql.Composed:
    """Predictions of both versions on the events both scored, optionally of one class."""
    return sql.SQL(
        "SELECT b.event_id, b.time, b.state AS base_state, s.state AS shadow_state,"
        " b.model_version AS base_version, s.model_version AS shadow_version"
        " FROM {}.predictions AS b JOIN {}.predictions AS s USING (event_id, time)"
        " WHERE %(class_id)s::text IS NULL OR b.class_id = %(class_id)s::text"
    ).format(sql.Identifier(base), sql.Identifier(shadow))


def compare(
    url: str,
    shadow: str,
    base: str = "public",
    *,
    class_id: str | None = None,
    limit: int = 50,
) -> ReplayDiff:
    """Compare the predictions and interventions of ``shadow`` with those of ``base``.

    Args:
        url: the store's ``postgresql://`` URL.
        shadow: the schema a rescore wrote (see :func:`streams.replay.rebuild.shadow_schema`).
        base: the schema to compare against; the live tables' by default.
        class_id: compare only this class's events.
        limit: most learner and state pairs listed in ``differences`` (all are counted).

    Raises:
        ReplayDiffError: when either schema holds no predictions table.
        ValueError: when a schema name is not a plain identifier.
    """
    check_schema(shadow)
    check_schema(base)
    diff = ReplayDiff(base=base, shadow=shadow, class_id=class_id)
    params = {"class_id": class_id, "limit": limit}
    with connect(url) as conn:
        for schema in (base, shadow):
            _require_tables(conn, schema)
        scope = _scope(base, shadow)
        _agreement(conn, diff, scope, params)
        _one_sided(conn, diff, params)
        _interventions(conn, diff, scope, params)
    return diff


def _require_tables(conn: psycopg.Connection, schema: str) -> None:
    found = conn.execute(
        "SELECT count(*) FROM information_schema.tables"
        " WHERE table_schema = %s AND table_name IN ('predictions', 'interventions')",
        (schema,),
    ).fetchone()
    if found is None or found[0] < 2:
        raise ReplayDiffError(
            f"schema {schema} holds no predictions and interventions tables"
            " (a rescore writes them: tutorstream replay run --mode rescore --model ...)"
        )


def _agreement(
    conn: psycopg.Connection, diff: ReplayDiff, scope: sql.Composed, params: dict[str, Any]
) -> None:
    # the confusion matrix of detected states is small (states squared); per-state figures
    # follow from it without another pass over the rows
    matrix = conn.execute(
        sql.SQL(
            "SELECT base_state, shadow_state, count(*) FROM ({}) AS pairs GROUP BY 1, 2"
        ).format(scope),
        params,
    ).fetchall()
    versions = conn.execute(
        sql.SQL(
            "SELECT array_agg(DISTINCT base_version), array_agg(DISTINCT shadow_version)"
            " FROM ({}) AS pairs"
        ).format(scope),
        params,
    ).fetchone()
    if versions is not None:
        diff.base_versions = sorted(versions[0] or [])
        diff.shadow_versions = sorted(versions[1] or [])
    diff.scored = sum(int(n) for _, _, n in matrix)
    known = [s.value for s in BehaviouralState if s is not BehaviouralState.NONE]
    seen = {str(b) for b, _, _ in matrix} | {str(s) for _, s, _ in matrix}
    names = known + sorted(seen - set(known) - {BehaviouralState.NONE.value})
    for name in names:
        base_fires = sum(int(n) for b, _, n in matrix if b == name)
        shadow_fires = sum(int(n) for _, s, n in matrix if s == name)
        both = sum(int(n) for b, s, n in matrix if b == name and s == name)
        disagree = base_fires + shadow_fires - 2 * both
        diff.states.append(
            StateAgreement(
                state=name,
                scored=diff.scored,
                base_fires=base_fires,
                shadow_fires=shadow_fires,
                both_fire=both,
                agreement=_ratio(diff.scored - disagree, diff.scored),
                precision=_ratio(both, shadow_fires),
                recall=_ratio(both, base_fires),
            )
        )


def _one_sided(conn: psycopg.Connection, diff: ReplayDiff, params: dict[str, Any]) -> None:
    query = sql.SQL(
        "SELECT count(*) FROM {}.predictions AS a"
        " WHERE (%(class_id)s::text IS NULL OR a.class_id = %(class_id)s::text)"
        " AND NOT EXISTS (SELECT 1 FROM {}.predictions AS o"
        " WHERE o.event_id = a.event_id AND o.time = a.time)"
    )
    for attr, one, other in (
        ("base_only", diff.base, diff.shadow),
        ("shadow_only", diff.shadow, diff.base),
    ):
        row = conn.execute(
            query.format(sql.Identifier(one), sql.Identifier(other)), params
        ).fetchone()
        setattr(diff, attr, int(row[0]) if row else 0)


def _interventions(
    conn: psycopg.Connection, diff: ReplayDiff, scope: sql.Composed, params: dict[str, Any]
) -> None:
    matched = sql.SQL(
        "WITH scope AS ({scope}),"
        " b AS (SELECT i.event_id, i.time, i.learner_id, i.state FROM {base}.interventions AS i"
        "  JOIN scope USING (event_id, time)),"
        " s AS (SELECT i.event_id, i.time, i.learner_id, i.state FROM {shadow}.interventions AS i"
        "  JOIN scope USING (event_id, time)),"
        " pairs AS (SELECT coalesce(b.learner_id, s.learner_id) AS learner_id,"
        "  coalesce(b.state, s.state) AS state,"
        "  count(b.event_id) AS on_base, count(s.event_id) AS on_shadow,"
        "  count(*) FILTER (WHERE s.event_id IS NULL) AS only_base,"
        "  count(*) FILTER (WHERE b.event_id IS NULL) AS only_shadow"
        "  FROM b FULL JOIN s ON b.event_id = s.event_id AND b.time = s.time"
        "   AND b.learner_id = s.learner_id AND b.state = s.state"
        "  GROUP BY 1, 2)"
    ).format(scope=scope, base=sql.Identifier(diff.base), shadow=sql.Identifier(diff.shadow))
    totals = conn.execute(
        sql.SQL(
            "{} SELECT coalesce(sum(on_base), 0), coalesce(sum(on_shadow), 0),"
            " coalesce(sum(only_base), 0), coalesce(sum(only_shadow), 0),"
            " count(*) FILTER (WHERE only_base + only_shadow > 0),"
            " count(DISTINCT learner_id) FILTER (WHERE only_base + only_shadow > 0)"
            " FROM pairs"
        ).format(matched),
        params,
    ).fetchone()
    if totals is not None:
        (
            diff.interventions_base,
            diff.interventions_shadow,
            diff.interventions_only_base,
            diff.interventions_only_shadow,
            diff.alerted_differently,
            diff.learners_alerted_differently,
        ) = (int(v) for v in totals)
    rows = conn.execute(
        sql.SQL(
            "{} SELECT learner_id, state, only_base, only_shadow FROM pairs"
            " WHERE only_base + only_shadow > 0"
            " ORDER BY only_base + only_shadow DESC, learner_id, state LIMIT %(limit)s"
        ).format(matched),
        params,
    ).fetchall()
    diff.differences = [AlertDifference(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]


def format_table(diff: ReplayDiff) -> str:
    """Return ``diff`` as a printable table."""

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [
        f"{diff.shadow} ({', '.join(diff.shadow_versions) or 'no predictions'}) against "
        f"{diff.base} ({', '.join(diff.base_versions) or 'no predictions'})"
        + ("" if diff.class_id is None else f", class {diff.class_id}"),
        f"events scored by both: {diff.scored:,}; by {diff.base} only: {diff.base_only:,};"
        f" by {diff.shadow} only: {diff.shadow_only:,}",
        "",
        f"{'state':<16} {'agreement':>9} {'precision':>9} {'recall':>7}"
        f" {'base fires':>10} {'shadow fires':>12} {'both':>7}",
    ]
    lines += [
        f"{s.state:<16} {share(s.agreement):>9} {share(s.precision):>9} {share(s.recall):>7}"
        f" {s.base_fires:>10,} {s.shadow_fires:>12,} {s.both_fire:>7,}"
        for s in diff.states
    ]
    lines += [
        "",
        f"interventions: {diff.interventions_base:,} in {diff.base},"
        f" {diff.interventions_shadow:,} in {diff.shadow};"
        f" {diff.interventions_only_base:,} only in {diff.base},"
        f" {diff.interventions_only_shadow:,} only in {diff.shadow}",
        f"alerted differently: {diff.alerted_differently:,} learner and state pairs,"
        f" {diff.learners_alerted_differently:,} learners",
    ]
    if diff.differences:
        lines.append(f"  {'learner':<40} {'state':<16} {'only base':>9} {'only shadow':>11}")
        lines += [
            f"  {d.learner_id:<40} {d.state:<16} {d.only_base:>9,} {d.only_shadow:>11,}"
            for d in diff.differences
        ]
        if len(diff.differences) < diff.alerted_differently:
            lines.append(f"  ... and {diff.alerted_differently - len(diff.differences):,} more")
    return "\n".join(lines)
