"""The Grafana boards, built in code with grafana-foundation-sdk.

Four boards: three for tutors on the store (PostgreSQL or TimescaleDB) and one for operators
on Prometheus. :func:`generated_files` gives every generated file (dashboards, Grafana
provisioning, the Prometheus scrape configuration) by its path under the repository root;
``tutorstream grafana build`` writes them and a test compares them with the committed ones.

Queries read the continuous aggregates (``class_states_1m``, ``class_interventions_1m``,
``class_skill_mastery_1h``) where one answers the question, and the raw hypertables through
their (learner, time) and (class, time) indexes otherwise.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

import yaml
from grafana_foundation_sdk.builders import (
    barchart,
    common,
    dashboard,
    heatmap,
    prometheus,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.runtime import UnknownDataquery
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dashboard_models
from grafana_foundation_sdk.models import prometheus as prometheus_models

STORE_UID: Final = "tutorstream-store"
"""UID of the PostgreSQL/TimescaleDB datasource the tutor boards query."""
PROMETHEUS_UID: Final = "tutorstream-prometheus"
"""UID of the Prometheus datasource of the pipeline board."""
FOLDER_UID: Final = "tutorstream"
FOLDER_TITLE: Final = "tutorstream"
POSTGRES_TYPE: Final = "grafana-postgresql-datasource"

CLASS_OVERVIEW_UID: Final = "tutorstream-class"
LEARNER_UID: Final = "tutorstream-learner"
OUTCOMES_UID: Final = "tutorstream-outcomes"
PIPELINE_UID: Final = "tutorstream-pipeline"

DASHBOARDS_DIR: Final = "deploy/grafana/dashboards"
CHART_DASHBOARDS_DIR: Final = "helm/tutorstream/dashboards"
PROVISIONING_DIR: Final = "deploy/grafana/provisioning"
PROMETHEUS_CONFIG: Final = "deploy/prometheus/prometheus.yml"
# Where the compose file mounts deploy/grafana/dashboards inside the Grafana container.
CONTAINER_DASHBOARDS: Final = "/var/lib/grafana/dashboards/tutorstream"

STORE: Final = dashboard_models.DataSourceRef(type_val=POSTGRES_TYPE, uid=STORE_UID)
PROMETHEUS: Final = dashboard_models.DataSourceRef(type_val="prometheus", uid=PROMETHEUS_UID)
# Grafana's built-in datasource: its own annotation store.
GRAFANA: Final = dashboard_models.DataSourceRef(type_val="grafana", uid="-- Grafana --")
LEARNER_ANNOTATION_TAGS: Final = ("tutorstream", "intervention", "learner:$learner")
"""Tags the learner board asks Grafana's annotation store for (see streams.annotations)."""

CONSOLE_VARIABLE: Final = "console"
"""The boards' constant variable holding the tutors' console's base URL (the API's URL)."""
DEFAULT_CONSOLE_URL: Final = "http://localhost:8000"
"""The console's base URL the committed boards carry: the API of the compose file."""
_CONSOLE_URL: Final = re.compile(r"^https?://[^\s?#]+$")

# Statuses of an intervention still waiting for a tutor.
OPEN_STATUSES: Final = "('pending_review', 'escalated')"


class SqlQuery(cogbuilder.Builder[cogvariants.Dataquery]):
    """A raw-SQL target of Grafana's PostgreSQL datasource (the SDK has no builder for it)."""

    def __init__(self, sql: str, *, fmt: str = "time_series", ref_id: str = "A") -> None:
        self._data: dict[str, Any] = {
            "datasource": {"type": POSTGRES_TYPE, "uid": STORE_UID},
            "editorMode": "code",
            "format": fmt,
            "rawQuery": True,
            "rawSql": _tidy(sql),
            "refId": ref_id,
        }

    def build(self) -> cogvariants.Dataquery:
        """Return the target."""
        return UnknownDataquery(dict(self._data))


class SqlAnnotationTarget(dashboard_models.AnnotationTarget):
    """An annotation target holding raw SQL, as Grafana stores one for a SQL datasource."""

    def __init__(self, sql: str) -> None:
        super().__init__()
        self.sql = _tidy(sql)

    def to_json(self) -> dict[str, object]:
        """Return the target's JSON."""
        return {
            "editorMode": "code",
            "format": "table",
            "rawQuery": True,
            "rawSql": self.sql,
            "refId": "Anno",
        }


class _Target(cogbuilder.Builder[dashboard_models.AnnotationTarget]):
    def __init__(self, target: dashboard_models.AnnotationTarget) -> None:
        self._target = target

    def build(self) -> dashboard_models.AnnotationTarget:
        return self._target


def _tidy(sql: str) -> str:
    return "\n".join(line.strip() for line in sql.strip().splitlines())


def _prom(
    expr: str, legend: str = "__auto", *, ref_id: str = "A", instant: bool = False
) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref_id)
    query = query.datasource({"type": "prometheus", "uid": PROMETHEUS_UID})
    return query.instant() if instant else query.range()


def _class_variable() -> dashboard.QueryVariable:
    # The hourly aggregate has a sixtieth of the minute aggregates' rows: listing the classes
    # of a year stays fast.
    return (
        dashboard.QueryVariable("class")
        .label("Class")
        .datasource(STORE)
        .query(
            "SELECT DISTINCT class_id FROM class_skill_mastery_1h WHERE $__timeFilter(bucket) "
            "AND class_id IS NOT NULL ORDER BY 1"
        )
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
    )


def _learner_link(title: str) -> dashboard_models.DynamicConfigValue:
    return dashboard_models.DynamicConfigValue(
        id_val="links",
        value=[
            {
                "title": title,
                # a class id may be an IRI: encoded, its ?, & and # stay in the variable
                "url": f"/d/{LEARNER_UID}/learner-drill-down?var-class=${{class:percentencode}}"
                "&var-learner=${__value.raw}&${__url_time_range}",
            },
            {
                "title": "Open the learner in the console",
                "url": console_link("learner", "${__value.raw}"),
                "targetBlank": True,
            },
        ],
    )


def console_link(page: str, learner: str | None = None) -> str:
    """Return the URL of a link to the console's ``page`` of the board's class.

    ``page`` is ``queue``, ``overview`` or ``learner``; ``learner`` is the Grafana expression
    of the learner's pseudonym (``${learner}`` or ``${__value.raw}``). The console's
    ``/console/open/{page}`` takes the ids as query parameters, percent-encoded here (a class
    id may be an IRI with ``/``, ``?``, ``&`` or ``#``), and redirects to the page itself.
    """
    # Grafana 10 and later percent-encode a link's variables unless told otherwise: the base
    # URL must stay a URL, hence :raw.
    url = f"${{{CONSOLE_VARIABLE}:raw}}/console/open/{page}?class=${{class:percentencode}}"
    if learner is not None:
        name = learner.removeprefix("${").removesuffix("}").removeprefix("$")
        url += f"&learner=${{{name}:percentencode}}"
    return url


def _console_variable() -> dashboard.ConstantVariable:
    # A constant: hidden from the board's header, set by `tutorstream grafana push
    # --console-url` (see with_console_url).
    return (
        dashboard.ConstantVariable(CONSOLE_VARIABLE)
        .label("Tutors' console")
        .value(DEFAULT_CONSOLE_URL)
    )


def _link(title: str, url: str, tooltip: str = "") -> dashboard.DashboardLink:
    """Return a link (of a board's header or a panel's) that opens in a new tab."""
    return (
        dashboard.DashboardLink(title)
        .type(dashboard_models.DashboardLinkType.LINK)
        .url(url)
        .tooltip(tooltip)
        .target_blank(True)
    )


def _queue_link() -> dashboard.DashboardLink:
    return _link(
        "Review queue in the console",
        console_link("queue"),
        "Approve, dismiss or escalate the class's interventions",
    )


def _overview_link() -> dashboard.DashboardLink:
    return _link("Class in the console", console_link("overview"), "The console's class overview")


def _learner_page_link() -> dashboard.DashboardLink:
    return _link(
        "Learner in the console",
        console_link("learner", "${learner}"),
        "The learner's page, with their name when the class has a roster",
    )


def _legend() -> common.VizLegendOptions:
    return (
        common.VizLegendOptions()
        .show_legend(True)
        .display_mode(common_models.LegendDisplayMode.LIST)
        .placement(common_models.LegendPlacement.BOTTOM)
    )


def _sql_table(title: str, sql: str) -> table.Panel:
    """Return a table panel of the store's ``sql``; the caller sets its size."""
    return (
        table.Panel()
        .show_header(True)
        .title(title)
        .datasource(STORE)
        .with_target(SqlQuery(sql, fmt="table"))
    )


def _stacked_bars(title: str, sql: str, description: str) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(STORE)
        .with_target(SqlQuery(sql))
        .draw_style(common_models.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .stacking(common.StackingConfig().mode(common_models.StackingMode.NORMAL))
        .legend(_legend())
        .height(9)
        .span(12)
    )


# --------------------------------------------------------------------------- class overview

ATTENTION_SQL: Final = f"""
SELECT i.time AS "time", i.learner_id AS learner, i.state,
       round(i.confidence::numeric, 2) AS confidence, i.status, i.prompt_id AS prompt,
       i.reason
FROM interventions i
WHERE i.class_id = '$class' AND i.status IN {OPEN_STATUSES} AND $__timeFilter(i.time)
ORDER BY i.time DESC, i.confidence DESC
LIMIT 100
"""

STATES_SQL: Final = """
SELECT $__timeGroupAlias(bucket, $__interval), state AS metric, sum(predictions) AS value
FROM class_states_1m
WHERE class_id = '$class' AND $__timeFilter(bucket)
GROUP BY 1, 2
ORDER BY 1, 2
"""

STATUS_SQL: Final = """
SELECT $__timeGroupAlias(bucket, $__interval), status AS metric, sum(interventions) AS value
FROM class_interventions_1m
WHERE class_id = '$class' AND $__timeFilter(bucket)
GROUP BY 1, 2
ORDER BY 1, 2
"""

BACKLOG_SQL: Final = """
SELECT count(*) FILTER (WHERE status = 'pending_review') AS "awaiting review",
       count(*) FILTER (WHERE status = 'escalated') AS escalated
FROM interventions
WHERE class_id = '$class' AND $__timeFilter(time)
"""

REVIEW_TIME_SQL: Final = """
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM acted_at - created_at))
       AS "median time to review",
       percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM acted_at - created_at))
       AS "p90 time to review"
FROM interventions
WHERE class_id = '$class' AND $__timeFilter(time) AND acted_at IS NOT NULL
"""

MASTERY_HEATMAP_SQL: Final = """
SELECT $__timeGroupAlias(bucket, $__interval), skill_id AS metric,
       sum(mean_mastery * estimates) / sum(estimates) AS value
FROM class_skill_mastery_1h
WHERE class_id = '$class' AND $__timeFilter(bucket)
GROUP BY 1, 2
ORDER BY 1, 2
"""


def class_overview() -> dashboard_models.Dashboard:
    """Who needs a tutor now, why, and whether the class is getting better."""
    attention = (
        table.Panel()
        .show_header(True)
        .title("Learners needing attention now")
        .description(
            "Interventions waiting for a tutor (pending review or escalated), newest first. "
            "Click a learner to open the drill-down or the learner's page in the console."
        )
        .datasource(STORE)
        .with_target(SqlQuery(ATTENTION_SQL, fmt="table"))
        .links([_queue_link()])
        .override_by_name("learner", [_learner_link("Open learner")])
        .override_by_name(
            "confidence",
            [
                dashboard_models.DynamicConfigValue(id_val="unit", value="percentunit"),
            ],
        )
        .height(10)
        .span(24)
    )
    backlog = (
        stat.Panel()
        .title("Review backlog")
        .description("Interventions raised in the time range still awaiting a tutor.")
        .datasource(STORE)
        .with_target(SqlQuery(BACKLOG_SQL, fmt="table"))
        .links([_queue_link()])
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .height(5)
        .span(6)
    )
    review_time = (
        stat.Panel()
        .title("Time to review")
        .description("From an intervention being raised to a tutor acting on it.")
        .datasource(STORE)
        .with_target(SqlQuery(REVIEW_TIME_SQL, fmt="table"))
        .links([_queue_link()])
        .unit("s")
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .height(5)
        .span(6)
    )
    states = _stacked_bars(
        "Detected states over time",
        STATES_SQL,
        "Predictions per state (class_states_1m), summed per interval.",
    ).links([_overview_link()])
    statuses = _stacked_bars(
        "Interventions by status",
        STATUS_SQL,
        "Interventions raised per interval by current status (class_interventions_1m).",
    ).links([_queue_link()])
    mastery = (
        heatmap.Panel()
        .title("Mastery by skill")
        .description("Mean predicted mastery per skill (class_skill_mastery_1h).")
        .datasource(STORE)
        .with_target(SqlQuery(MASTERY_HEATMAP_SQL))
        .interval("1h")
        .calculate(False)
        .color(heatmap.HeatmapColorOptions().scheme("RdYlGn").steps(32))
        .links([_overview_link()])
        .height(10)
        .span(12)
    )
    return (
        dashboard.Dashboard("Class overview")
        .uid(CLASS_OVERVIEW_UID)
        .tags(["tutorstream", "tutor"])
        .time("now-24h", "now")
        .refresh("1m")
        .timezone("browser")
        .with_variable(_class_variable())
        .with_variable(_console_variable())
        .link(_queue_link())
        .link(_overview_link())
        .with_panel(attention)
        .with_panel(backlog)
        .with_panel(review_time)
        .with_panel(statuses)
        .with_panel(states)
        .with_panel(mastery)
        .build()
    )


# --------------------------------------------------------------------------- learner drill-down

LEARNER_VARIABLE_SQL: Final = (
    "SELECT DISTINCT learner_id FROM predictions WHERE class_id = '$class' "
    "AND $__timeFilter(time) ORDER BY 1"
)

LEARNER_STATES_SQL: Final = """
SELECT time AS "time", state
FROM predictions
WHERE learner_id = '$learner' AND $__timeFilter(time)
ORDER BY 1
"""

LEARNER_ANNOTATIONS_SQL: Final = """
SELECT time AS "time", state || ' (' || status || '): ' || prompt AS text,
       state || ',' || status AS tags
FROM interventions
WHERE learner_id = '$learner' AND $__timeFilter(time)
ORDER BY 1
"""

LEARNER_MASTERY_SQL: Final = """
SELECT $__timeGroupAlias(time, $__interval), skill_id AS metric, avg(mastery) AS value
FROM skill_mastery
WHERE learner_id = '$learner' AND $__timeFilter(time)
GROUP BY 1, 2
ORDER BY 1, 2
"""

RESPONSE_TIME_SQL: Final = """
WITH mine AS (
    SELECT time, item_id, duration_s
    FROM events
    WHERE learner_id = '$learner' AND $__timeFilter(time) AND duration_s IS NOT NULL
      AND item_id IS NOT NULL
), norms AS (
    SELECT item_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_s) AS norm
    FROM events
    WHERE class_id = '$class' AND $__timeFilter(time) AND duration_s IS NOT NULL
      AND item_id IN (SELECT item_id FROM mine)
    GROUP BY item_id
)
SELECT m.time AS "time", m.duration_s AS "response time", n.norm AS "class median for the item"
FROM mine m JOIN norms n USING (item_id)
ORDER BY 1
"""

RECOMMENDATIONS_SQL: Final = """
SELECT r.time AS "time", r.item_id AS recommended, round(r.p_success::numeric, 2) AS p_success,
       r.reason, nxt.item_id AS "next item", coalesce(nxt.item_id = r.item_id, false) AS followed
FROM recommendations r
LEFT JOIN LATERAL (
    SELECT e.item_id
    FROM events e
    WHERE e.learner_id = r.learner_id AND e.time > r.time AND e.item_id IS NOT NULL
      AND e.item_id IS DISTINCT FROM (
          SELECT c.item_id FROM events c WHERE c.event_id = r.event_id AND c.time = r.time)
    ORDER BY e.time
    LIMIT 1
) nxt ON true
WHERE r.learner_id = '$learner' AND $__timeFilter(r.time)
ORDER BY r.time DESC
LIMIT 200
"""

FOLLOWED_SQL: Final = """
WITH made AS (
    SELECT r.time, r.item_id, (
        SELECT e.item_id
        FROM events e
        WHERE e.learner_id = r.learner_id AND e.time > r.time AND e.item_id IS NOT NULL
          AND e.item_id IS DISTINCT FROM (
              SELECT c.item_id FROM events c WHERE c.event_id = r.event_id AND c.time = r.time)
        ORDER BY e.time
        LIMIT 1) AS next_item
    FROM recommendations r
    WHERE r.learner_id = '$learner' AND $__timeFilter(r.time)
)
SELECT avg((next_item = item_id)::int) AS "recommendations followed", count(*) AS "made"
FROM made
WHERE next_item IS NOT NULL
"""


def learner_drilldown() -> dashboard_models.Dashboard:
    """One learner: detected states, interventions, mastery, pace, recommendations."""
    learner = (
        dashboard.QueryVariable("learner")
        .label("Learner (pseudonym)")
        .datasource(STORE)
        .query(LEARNER_VARIABLE_SQL)
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
    )
    annotations = (
        dashboard.AnnotationQuery()
        .name("Interventions")
        .datasource(STORE)
        .enable(True)
        .icon_color("red")
        .target(_Target(SqlAnnotationTarget(LEARNER_ANNOTATIONS_SQL)))
    )
    # Workers with TUTORSTREAM_GRAFANA__URL set also post each new intervention to Grafana's
    # own annotation store, tagged with the learner's pseudonym. The store's rows stay the
    # default source: they exist without that setting, cover history and rebuilds, and show
    # the status a tutor's review gave; both on at once would mark every intervention twice.
    posted = (
        dashboard.AnnotationQuery()
        .name("Interventions posted by workers")
        .datasource(GRAFANA)
        .enable(False)
        .icon_color("orange")
        .target(
            _Target(
                dashboard_models.AnnotationTarget(
                    limit=500,
                    match_any=False,
                    tags=list(LEARNER_ANNOTATION_TAGS),
                    type_val="tags",
                )
            )
        )
    )
    states = (
        statetimeline.Panel()
        .title("Predicted state")
        .description(
            "The model's detected state at each decision event; red marks are interventions."
        )
        .datasource(STORE)
        .with_target(SqlQuery(LEARNER_STATES_SQL, fmt="table"))
        .show_value(common_models.VisibilityMode.NEVER)
        .fill_opacity(80)
        .links([_learner_page_link()])
        .height(6)
        .span(24)
    )
    mastery = (
        timeseries.Panel()
        .title("Mastery per skill")
        .datasource(STORE)
        .with_target(SqlQuery(LEARNER_MASTERY_SQL))
        .min(0)
        .max(1)
        .unit("percentunit")
        .legend(_legend())
        .height(9)
        .span(12)
    )
    pace = (
        timeseries.Panel()
        .title("Response time against the item's class median")
        .datasource(STORE)
        .with_target(SqlQuery(RESPONSE_TIME_SQL, fmt="table"))
        .draw_style(common_models.GraphDrawStyle.POINTS)
        .point_size(6)
        .unit("s")
        .legend(_legend())
        .height(9)
        .span(12)
    )
    followed = (
        stat.Panel()
        .title("Recommendations followed")
        .datasource(STORE)
        .with_target(SqlQuery(FOLLOWED_SQL, fmt="table"))
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .override_by_name(
            "recommendations followed",
            [
                dashboard_models.DynamicConfigValue(id_val="unit", value="percentunit"),
            ],
        )
        .height(8)
        .span(6)
    )
    recommendations = (
        _sql_table("Recommendations and what the learner did next", RECOMMENDATIONS_SQL)
        .links([_learner_page_link()])
        .height(8)
        .span(18)
    )
    return (
        dashboard.Dashboard("Learner drill-down")
        .uid(LEARNER_UID)
        .tags(["tutorstream", "tutor"])
        .time("now-7d", "now")
        .timezone("browser")
        .with_variable(_class_variable())
        .with_variable(learner)
        .with_variable(_console_variable())
        .link(_learner_page_link())
        .link(_queue_link())
        .annotation(annotations)
        .annotation(posted)
        .with_panel(states)
        .with_panel(mastery)
        .with_panel(pace)
        .with_panel(followed)
        .with_panel(recommendations)
        .build()
    )


# --------------------------------------------------------------------------- outcomes

# One row per intervention in range: whether the flagged state was gone from the last of the
# learner's next $window predictions, and success over the next $window answers against the
# previous $window. Dismissed interventions were never shown to the learner: they are the
# comparison for the prompted (sent) ones.
_OUTCOME_ROWS: Final = f"""
WITH raised AS (
    SELECT i.time, i.learner_id, i.state, i.status,
           coalesce(i.prompt_id, '(none)') AS prompt_id,
           coalesce(i.model_version, '(unknown)') AS model_version
    FROM interventions i
    WHERE i.class_id = '$class' AND $__timeFilter(i.time)
      AND i.status NOT IN {OPEN_STATUSES}
), outcome AS (
    SELECT r.*,
           (SELECT p.state <> r.state
            FROM (SELECT q.state, q.time FROM predictions q
                  WHERE q.learner_id = r.learner_id AND q.time > r.time
                  ORDER BY q.time LIMIT $window) p
            ORDER BY p.time DESC LIMIT 1) AS cleared,
           (SELECT avg(a.correct::int) FROM (
                SELECT e.correct FROM events e
                WHERE e.learner_id = r.learner_id AND e.time > r.time AND e.correct IS NOT NULL
                ORDER BY e.time LIMIT $window) a) AS success_after,
           (SELECT avg(b.correct::int) FROM (
                SELECT e.correct FROM events e
                WHERE e.learner_id = r.learner_id AND e.time <= r.time AND e.correct IS NOT NULL
                ORDER BY e.time DESC LIMIT $window) b) AS success_before
    FROM raised r
)
"""

OUTCOMES_BY_PROMPT_SQL: Final = (
    _OUTCOME_ROWS
    + """
SELECT state, prompt_id AS prompt, count(*) FILTER (WHERE status = 'sent') AS prompted,
       avg(cleared::int) FILTER (WHERE status = 'sent') AS "cleared after prompt",
       avg(cleared::int) FILTER (WHERE status = 'dismissed') AS "cleared when dismissed",
       avg(success_after - success_before) FILTER (WHERE status = 'sent')
           AS "success change after prompt"
FROM outcome
GROUP BY 1, 2
ORDER BY 1, 2
"""
)

OUTCOMES_BY_STATE_SQL: Final = (
    _OUTCOME_ROWS
    + """
SELECT state,
       coalesce(avg(cleared::int) FILTER (WHERE status = 'sent'), 0) AS "prompted",
       coalesce(avg(cleared::int) FILTER (WHERE status = 'dismissed'), 0) AS "dismissed"
FROM outcome
GROUP BY 1
ORDER BY 1
"""
)

OUTCOMES_BY_MODEL_SQL: Final = (
    _OUTCOME_ROWS
    + """
SELECT model_version AS "model version", state, count(*) AS interventions,
       avg(cleared::int) AS "state cleared",
       avg(success_after - success_before) AS "success change"
FROM outcome
GROUP BY 1, 2
ORDER BY 1, 2
"""
)


def intervention_outcomes() -> dashboard_models.Dashboard:
    """What happened after each kind of prompt: the evidence to keep or change it."""
    window = (
        dashboard.CustomVariable("window")
        .label("Events after the prompt")
        .values("5,10,20")
        .current(dashboard_models.VariableOption(selected=True, text="10", value="10"))
    )
    by_state = (
        barchart.Panel()
        .title("State cleared within the window: prompted vs dismissed")
        .description(
            "Share of interventions whose state was gone from the learner's "
            "prediction $window events later."
        )
        .datasource(STORE)
        .with_target(SqlQuery(OUTCOMES_BY_STATE_SQL, fmt="table"))
        .links([_queue_link()])
        .x_field("state")
        .unit("percentunit")
        .legend(_legend())
        .height(9)
        .span(12)
    )
    by_prompt = (
        _sql_table("Outcome by prompt", OUTCOMES_BY_PROMPT_SQL)
        .links([_queue_link()])
        .height(9)
        .span(12)
    )
    by_model = _sql_table("Outcome by model version", OUTCOMES_BY_MODEL_SQL).height(8).span(24)
    return (
        dashboard.Dashboard("Intervention outcomes")
        .uid(OUTCOMES_UID)
        .tags(["tutorstream", "tutor", "design"])
        .time("now-30d", "now")
        .timezone("browser")
        .with_variable(_class_variable())
        .with_variable(window)
        .with_variable(_console_variable())
        .link(_queue_link())
        .link(_overview_link())
        .with_panel(by_state)
        .with_panel(by_prompt)
        .with_panel(by_model)
        .build()
    )


# --------------------------------------------------------------------------- pipeline health


@dataclass(frozen=True, slots=True)
class PromPanel:
    """A Prometheus time-series panel: title, unit and (expression, legend) pairs."""

    title: str
    unit: str
    queries: tuple[tuple[str, str], ...]


def _quantiles(metric: str, by: str = "") -> tuple[tuple[str, str], ...]:
    group = f"le{', ' + by if by else ''}"
    return tuple(
        (
            f"histogram_quantile({q}, sum by ({group}) (rate({metric}_bucket[$__rate_interval])))",
            f"p{round(q * 100)}" + (f" {{{{{by}}}}}" if by else ""),
        )
        for q in (0.5, 0.99)
    )


PIPELINE_PANELS: Final = (
    PromPanel(
        "Events in per second",
        "ops",
        (
            ("sum by (source) (rate(tutorstream_events_in_total[$__rate_interval]))", "{{source}}"),
            (
                "sum by (format) (rate(tutorstream_api_events_accepted_total[$__rate_interval]))",
                "API {{format}}",
            ),
        ),
    ),
    PromPanel(
        "Dead-letter rate",
        "ops",
        (
            ("sum by (reason) (rate(tutorstream_dlq_total[$__rate_interval]))", "{{reason}}"),
            (
                "sum by (format) (rate(tutorstream_api_events_rejected_total[$__rate_interval]))",
                "API rejected {{format}}",
            ),
        ),
    ),
    PromPanel(
        "Consumer lag", "short", (("sum by (topic) (tutorstream_consumer_lag)", "{{topic}}"),)
    ),
    PromPanel(
        # read again and late are the guarantees at work; lost to retention is an event gone
        "Records read again, late or lost to retention",
        "short",
        (
            ("sum(increase(tutorstream_redelivered_total[$__rate_interval]))", "read again"),
            ("sum(increase(tutorstream_late_records_total[$__rate_interval]))", "late"),
            (
                "sum by (topic) (increase(tutorstream_records_expired_total[$__rate_interval]))",
                "lost to retention {{topic}}",
            ),
        ),
    ),
    PromPanel(
        "Micro-batch size",
        "short",
        (
            *_quantiles("tutorstream_batch_size"),
            (
                "sum(rate(tutorstream_batch_size_sum[$__rate_interval])) / "
                "sum(rate(tutorstream_batch_size_count[$__rate_interval]))",
                "mean",
            ),
        ),
    ),
    PromPanel("Inference latency", "s", _quantiles("tutorstream_inference_latency_seconds")),
    PromPanel("Sink latency", "s", _quantiles("tutorstream_sink_latency_seconds")),
    PromPanel(
        "Event to intervention", "s", _quantiles("tutorstream_event_to_intervention_seconds")
    ),
    PromPanel("API latency", "s", _quantiles("tutorstream_api_request_seconds", "route")),
)

DLQ_REASONS_EXPR: Final = "topk(10, sum by (reason) (increase(tutorstream_dlq_total[$__range])))"
MODEL_INFO_EXPR: Final = "max by (name, version, provider) (tutorstream_model_info)"


def pipeline_health() -> dashboard_models.Dashboard:
    """Throughput, errors, lag and latency of workers and API, for operators."""
    board = (
        dashboard.Dashboard("Pipeline health")
        .uid(PIPELINE_UID)
        .tags(["tutorstream", "operations"])
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
    )
    model = (
        table.Panel()
        .show_header(True)
        .title("Model in use (version, execution provider)")
        .datasource(PROMETHEUS)
        .with_target(
            _prom(MODEL_INFO_EXPR, instant=True).format(prometheus_models.PromQueryFormat.TABLE)
        )
        .height(5)
        .span(12)
    )
    reasons = (
        barchart.Panel()
        .title("Top dead-letter reasons")
        .datasource(PROMETHEUS)
        .with_target(
            _prom(DLQ_REASONS_EXPR, "{{reason}}", instant=True).format(
                prometheus_models.PromQueryFormat.TABLE
            )
        )
        .x_field("reason")
        .height(5)
        .span(12)
    )
    board = board.with_panel(model).with_panel(reasons)
    for spec in PIPELINE_PANELS:
        panel = (
            timeseries.Panel()
            .title(spec.title)
            .datasource(PROMETHEUS)
            .unit(spec.unit)
            .legend(_legend())
            .height(8)
            .span(12)
        )
        for n, (expr, legend) in enumerate(spec.queries):
            panel = panel.with_target(_prom(expr, legend, ref_id=chr(ord("A") + n)))
        board = board.with_panel(panel)
    return board.build()


# --------------------------------------------------------------------------- files


def to_json(board: dashboard_models.Dashboard) -> dict[str, Any]:
    """Return a board as the JSON object Grafana stores."""
    data: dict[str, Any] = json.loads(json.dumps(board, cls=JSONEncoder))
    return data


BOARDS: Final = {
    "class-overview.json": class_overview,
    "learner-drill-down.json": learner_drilldown,
    "intervention-outcomes.json": intervention_outcomes,
    "pipeline-health.json": pipeline_health,
}


def with_console_url(board: dict[str, Any], url: str) -> dict[str, Any]:
    """Return ``board`` with its links to the console pointing at ``url``.

    Args:
        board: a board's JSON, as :func:`dashboards` gives it.
        url: the console's base URL, as a tutor's browser reaches the API
            (``https://tutorstream.school.example``); a trailing ``/`` is dropped.

    Raises:
        ValueError: when ``url`` is not an http(s) URL without query or fragment.
    """
    base = url.strip().rstrip("/")
    if not _CONSOLE_URL.match(base):
        raise ValueError(
            f"the console's URL must be http(s)://host[:port][/path], without ? or #: {url!r}"
        )
    templating = board.get("templating") or {}
    if "list" not in templating:
        return board
    variables = [
        {**variable, "query": base} if variable.get("name") == CONSOLE_VARIABLE else variable
        for variable in templating["list"]
    ]
    return {**board, "templating": {**templating, "list": variables}}


def dashboards(console_url: str = DEFAULT_CONSOLE_URL) -> dict[str, dict[str, Any]]:
    """Return every board's JSON by file name.

    Args:
        console_url: base URL of the tutors' console the boards link to.

    Raises:
        ValueError: when ``console_url`` is not an http(s) URL.
    """
    return {name: with_console_url(to_json(make()), console_url) for name, make in BOARDS.items()}


def datasources(
    store_url: str = "timescaledb:5432",
    database: str = "tutorstream",
    user: str = "grafana_reader",
    prometheus_url: str = "http://prometheus:9090",
    *,
    timescaledb: bool = True,
) -> list[dict[str, Any]]:
    """Return the two datasources as Grafana's HTTP API and provisioning describe them.

    Args:
        store_url: ``host:port`` of the store.
        database: the store's database.
        user: a login member of the store's read-only ``tutorstream_reader`` role.
        prometheus_url: URL of Prometheus as Grafana's server reaches it.
        timescaledb: the store runs TimescaleDB (``$__timeGroup`` then uses ``time_bucket``).
    """
    return [
        {
            "name": "tutorstream store",
            "uid": STORE_UID,
            "type": POSTGRES_TYPE,
            "access": "proxy",
            "url": store_url,
            "user": user,
            "jsonData": {
                "database": database,
                "sslmode": "disable",
                "postgresVersion": 1500,
                "timescaledb": timescaledb,
                "timeInterval": "1m",
            },
            "isDefault": True,
        },
        {
            "name": "tutorstream Prometheus",
            "uid": PROMETHEUS_UID,
            "type": "prometheus",
            "access": "proxy",
            "url": prometheus_url,
            "jsonData": {"timeInterval": "15s", "httpMethod": "POST"},
            "isDefault": False,
        },
    ]


def _provisioned_datasources() -> str:
    sources = []
    for source in datasources():
        entry = {k: v for k, v in source.items() if k != "access"}
        entry["access"] = "proxy"
        entry["editable"] = False
        if source["uid"] == STORE_UID:
            entry["url"] = "${TUTORSTREAM_GRAFANA_DB_HOST:-timescaledb:5432}"
            entry["jsonData"] = {
                **source["jsonData"],
                "database": "${TUTORSTREAM_GRAFANA_DB_NAME:-tutorstream}",
            }
            # a login member of the tutorstream_reader role (migration 0006): read-only
            entry["user"] = "${TUTORSTREAM_GRAFANA_DB_USER:-grafana_reader}"
            entry["secureJsonData"] = {"password": "${TUTORSTREAM_GRAFANA_DB_PASSWORD}"}
        sources.append(entry)
    return _yaml({"apiVersion": 1, "datasources": sources})


def _provisioned_dashboards() -> str:
    return _yaml(
        {
            "apiVersion": 1,
            "providers": [
                {
                    "name": "tutorstream",
                    "orgId": 1,
                    "folder": FOLDER_TITLE,
                    "folderUid": FOLDER_UID,
                    "type": "file",
                    "disableDeletion": True,
                    "allowUiUpdates": False,
                    "updateIntervalSeconds": 60,
                    "options": {"path": CONTAINER_DASHBOARDS, "foldersFromFilesStructure": False},
                }
            ],
        }
    )


def _prometheus_config() -> str:
    return _yaml(
        {
            "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
            "scrape_configs": [
                {
                    "job_name": "tutorstream-worker",
                    "metrics_path": "/metrics",
                    # Compose's DNS answers the service name with every replica's address:
                    # `--scale worker=N` gives N targets, where a static target would be one.
                    "dns_sd_configs": [
                        {"names": ["worker"], "type": "A", "port": 6066, "refresh_interval": "30s"}
                    ],
                },
                {
                    "job_name": "tutorstream-api",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": ["api:8000"]}],
                },
            ],
        }
    )


def _yaml(data: dict[str, Any]) -> str:
    header = "# Generated by `tutorstream grafana build`; edit tutorstream/grafana/boards.py.\n"
    return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)


def generated_files() -> dict[str, str]:
    """Return every generated file's text by its path under the repository root."""
    files: dict[str, str] = {}
    for name, board in dashboards().items():
        text = json.dumps(board, indent=2, sort_keys=True) + "\n"
        files[f"{DASHBOARDS_DIR}/{name}"] = text
        # the chart ships the same boards (Helm reads files only from inside the chart)
        files[f"{CHART_DASHBOARDS_DIR}/{name}"] = text
    files[f"{PROVISIONING_DIR}/datasources/tutorstream.yaml"] = _provisioned_datasources()
    files[f"{PROVISIONING_DIR}/dashboards/tutorstream.yaml"] = _provisioned_dashboards()
    files[PROMETHEUS_CONFIG] = _prometheus_config()
    return files
