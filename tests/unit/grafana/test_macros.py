from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tutorstream.grafana.macros import MacroError, QueryContext, expand, format_interval

pytestmark = pytest.mark.unit

FROM = datetime(2017, 7, 18, 11, 15, 52, tzinfo=UTC)
TO = datetime(2017, 7, 18, 11, 25, 52, tzinfo=UTC)


def context(**kwargs: object) -> QueryContext:
    return QueryContext(FROM, TO, **kwargs)  # type: ignore[arg-type]


def test_time_filter_and_bounds_as_grafana_documents_them() -> None:
    sql = "SELECT 1 WHERE $__timeFilter(time) AND x > $__timeFrom() AND x < $__timeTo()"
    assert expand(sql, context()) == (
        "SELECT 1 WHERE time BETWEEN '2017-07-18T11:15:52Z' AND '2017-07-18T11:25:52Z' "
        "AND x > '2017-07-18T11:15:52Z' AND x < '2017-07-18T11:25:52Z'"
    )


def test_time_group_plain_postgres_and_timescaledb() -> None:
    sql = "SELECT $__timeGroupAlias(bucket, $__interval), $__timeGroup(t, '1h')"
    assert expand(sql, context(interval=timedelta(minutes=5))) == (
        'SELECT floor(extract(epoch from bucket)/300)*300 AS "time", '
        "floor(extract(epoch from t)/3600)*3600"
    )
    assert expand(sql, context(interval=timedelta(minutes=5), timescaledb=True)) == (
        "SELECT time_bucket('300s',bucket) AS \"time\", time_bucket('3600s',t)"
    )


def test_variables_single_quoted_raw_and_multi_as_literal_list() -> None:
    sql = "WHERE c = '$class' AND l = '${learner}' AND c IN ($classes) LIMIT [[n]]"
    expanded = expand(
        sql,
        context(variables={"class": "o'neil", "learner": "abc", "classes": ["a", "b'c"], "n": "5"}),
    )
    assert expanded == "WHERE c = 'o''neil' AND l = 'abc' AND c IN ('a','b''c') LIMIT 5"


def test_unknown_macro_or_missing_variable_is_an_error() -> None:
    with pytest.raises(MacroError, match="unknown macro"):
        expand("SELECT $__nope(x)", context())
    with pytest.raises(MacroError, match=r"\$learner"):
        expand("SELECT '$learner'", context())


def test_interval_text() -> None:
    assert format_interval(timedelta(minutes=1)) == "1m"
    assert format_interval(timedelta(hours=2)) == "2h"
    assert format_interval(timedelta(seconds=90)) == "90s"
    assert format_interval(timedelta(milliseconds=500)) == "500ms"
