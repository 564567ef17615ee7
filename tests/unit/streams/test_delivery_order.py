"""The worker's check of the offsets Faust delivers and commits: every skip and stall is seen."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from types import SimpleNamespace

import pytest

from streams.app import (
    DELIVERY_START_ATTRIBUTE,
    DeliveryOrder,
    StallWatch,
    _commit_only_from_the_committed_offset,
    _fetched_end,
    _known_end,
)

pytestmark = pytest.mark.unit


def test_records_in_order_and_records_delivered_again_are_no_skip() -> None:
    order = DeliveryOrder()
    assert [order.check("p0", o, 10) for o in (10, 11, 12)] == [None] * 3
    # after a rebalance Faust seeks back to the commit: those come again
    assert [order.check("p0", o, 10) for o in (10, 11, 12, 13)] == [None] * 4


def test_a_skip_is_reported_from_its_first_missing_offset() -> None:
    order = DeliveryOrder()
    assert order.check("p0", 10, 10) is None
    assert order.check("p0", 17, 10) == 11, "11..16 were fetched and never delivered"
    assert order.check("p0", 18, 10) is None
    # read again from the commit after a rebalance: no new skip
    order.reset()
    assert [order.check("p0", o, 11) for o in range(11, 19)] == [None] * 8


def test_the_first_record_after_an_assignment_is_checked_against_the_commit() -> None:
    order = DeliveryOrder()
    assert order.check("p1", 4157, 4140) == 4140
    assert order.check("p2", 7, None) is None, "nothing committed: nothing to check"
    assert order.check("p3", 3, 3) is None, "partitions are apart"


def test_deliveries_are_counted_per_partition() -> None:
    order = DeliveryOrder()
    for offset in (0, 1, 1, 2):
        order.check("p0", offset, 0)
    order.check("p1", 5, 5)
    assert order.delivered == {"p0": 4, "p1": 1}
    order.reset()
    assert order.delivered["p0"] == 4, "a seek does not forget what was delivered"


def _commit_state(committed: int | None, acked: list[int]) -> SimpleNamespace:
    # the three fields of Faust's consumer that its commit reads: a Consumer needs a running
    # app and broker, and the rule under test reads nothing else
    return SimpleNamespace(
        _acked=defaultdict(list, {"p0": list(acked)}),
        _acked_index=defaultdict(set, {"p0": set(acked)}),
        _committed_offset=defaultdict(lambda: None, {"p0": committed}),
    )


def test_faust_commits_only_a_run_that_starts_at_the_committed_offset() -> None:
    from faust.transport.consumer import Consumer

    _commit_only_from_the_committed_offset()
    new_offset = Consumer._new_offset
    # Faust's own rule committed 12 here: past 9, which nobody acked
    assert new_offset(_commit_state(9, [10, 11]), "p0") is None
    assert new_offset(_commit_state(9, [11, 10, 9]), "p0") == 12
    state = _commit_state(9, [9, 10, 12, 13])
    assert new_offset(state, "p0") == 11, "the run stops at the first hole"
    assert state._acked["p0"] == [12, 13] and state._acked_index["p0"] == {12, 13}
    assert new_offset(_commit_state(None, [4, 5]), "p0") == 6, "nothing committed yet"
    stale = _commit_state(20, [3, 4, 20, 21])
    assert new_offset(stale, "p0") == 22, "acks from before a seek forward are dropped"
    assert stale._acked_index["p0"] == set()
    assert new_offset(_commit_state(0, [1]), "p0") is None, "offset 0 is a committed offset"


def test_with_no_commit_yet_the_run_must_start_at_the_log_start() -> None:
    """A group's first commit on a partition was any first run: records before it were lost."""
    from faust.transport.consumer import Consumer

    _commit_only_from_the_committed_offset()
    new_offset = Consumer._new_offset
    state = _commit_state(None, [4, 5])
    setattr(state, DELIVERY_START_ATTRIBUTE, {"p0": 0})
    assert new_offset(state, "p0") is None, "0..3 were skipped"
    state = _commit_state(None, [0, 1, 3])
    setattr(state, DELIVERY_START_ATTRIBUTE, {"p0": 0})
    assert new_offset(state, "p0") == 2
    state = _commit_state(None, [7, 8])
    setattr(state, DELIVERY_START_ATTRIBUTE, {"p0": 7})
    assert new_offset(state, "p0") == 9, "retention removed 0..6"
    state = _commit_state(None, [0, 1])
    setattr(state, DELIVERY_START_ATTRIBUTE, {})
    assert new_offset(state, "p0") is None, "the log start not learnt yet: no commit"


def test_a_partition_with_records_past_its_commit_and_no_delivery_is_stalled() -> None:
    watch = StallWatch()
    delivered: Counter[str] = Counter({"p0": 5, "p1": 8})
    ends = {"p0": 100, "p1": 40}
    committed: dict[str, int | None] = {"p0": 60, "p1": 40}
    assert watch.stalled(ends, committed, delivered, idle=True) == set(), "one check says nothing"
    assert watch.stalled(ends, committed, delivered, idle=True) == {"p0"}
    # records arriving since the last check are not a stall yet
    watch.forget()
    watch.stalled({"p0": 60, "p1": 40}, committed, delivered, idle=True)
    assert watch.stalled(ends, committed, delivered, idle=True) == set()


def test_a_stall_in_the_last_batch_is_seen_by_the_fetched_end() -> None:
    """The embedded broker lists a partition's end short of the commit; its fetches say more.

    The shape of a replacement that delivered nothing more: committed at 897, the broker
    listing 887 (its last batch's first offset plus one) and its fetch responses 938.
    """
    delivered: Counter[str] = Counter({"p0": 527})
    committed: dict[str, int | None] = {"p0": 897}
    by_listed = StallWatch()
    for _ in range(3):
        assert by_listed.stalled({"p0": 887}, committed, delivered, idle=True) == set()
    watch = StallWatch()
    ends = {"p0": _known_end(887, 938)}
    watch.stalled(ends, committed, delivered, idle=True)
    assert watch.stalled(ends, committed, delivered, idle=True) == {"p0"}


def test_a_partition_end_is_the_greater_known_one() -> None:
    assert _known_end(887, 938) == 938
    assert _known_end(940, 938) == 940, "a fetch response older than the listing"
    assert _known_end(None, 938) == 938
    assert _known_end(887, None) == 887
    assert _known_end(None, None) is None


def test_the_fetched_end_of_a_partition_the_client_no_longer_holds_is_unknown() -> None:
    def gone(tp: str) -> int:
        raise AssertionError(f"{tp} is not assigned")

    assert _fetched_end(SimpleNamespace(highwater=gone), "p0") is None
    assert _fetched_end(SimpleNamespace(highwater=lambda tp: None), "p0") is None
    assert _fetched_end(SimpleNamespace(highwater=lambda tp: -1), "p0") is None
    assert _fetched_end(SimpleNamespace(highwater=lambda tp: 938), "p0") == 938


def test_a_busy_worker_judges_no_partition() -> None:
    """Under a backlog the client hands out one partition's records before the next one's."""
    watch = StallWatch()
    delivered: Counter[str] = Counter({"p0": 5, "p1": 8})
    ends = {"p0": 100, "p1": 100}
    watch.stalled(ends, {"p0": 60, "p1": 50}, delivered, idle=False)
    delivered["p1"] += 3  # p1 delivers; p0 waits its turn, though it holds records
    assert watch.stalled(ends, {"p0": 60, "p1": 50}, delivered, idle=False) == set()
    watch.stalled(ends, {"p0": 60, "p1": 53}, delivered, idle=True)
    delivered["p1"] += 1  # idle at both checks, yet something came in between: not quiet
    caught_up = {"p0": 100, "p1": 54}
    assert watch.stalled(caught_up, {"p0": 60, "p1": 54}, delivered, idle=True) == set()
    assert watch.stalled(caught_up, {"p0": 60, "p1": 54}, delivered, idle=True) == {"p0"}


def test_a_worker_holding_its_own_input_stalls_no_partition() -> None:
    """A store outage stops every delivery and commit: that is the worker waiting, not a stall."""
    watch = StallWatch()
    delivered: Counter[str] = Counter({"p0": 5, "p1": 8})
    ends = {"p0": 100, "p1": 100}
    committed: dict[str, int | None] = {"p0": 60, "p1": 50}
    for _ in range(3):
        assert watch.stalled(ends, committed, delivered, idle=False) == set()
    assert watch.stalled(ends, committed, delivered, idle=True) == set(), "idle at one check only"
    assert watch.stalled(ends, committed, delivered, idle=True) == {"p0", "p1"}


def test_records_the_retention_deleted_before_processing_are_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from streams import metrics
    from streams.app import _report_expired

    tp = SimpleNamespace(topic="lms.events.v1", partition=7)
    counter = metrics.EXPIRED.labels("lms.events.v1", "7")
    before = counter._value.get()
    with caplog.at_level(logging.ERROR, logger="streams.app"):
        _report_expired(tp, 40, 40)  # the log starts at the commit: nothing gone
        _report_expired(tp, None, 900)  # no commit yet: the log's start is where it begins
        assert counter._value.get() == before and not caplog.records
        _report_expired(tp, 100, 350)
    assert counter._value.get() == before + 250
    (record,) = caplog.records
    assert "250 records of lms.events.v1[7] (offsets 100 to 349)" in record.getMessage()
