"""Prometheus metrics of a stream worker, served on its web port at ``/metrics``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_IN = Counter(
    "tutorstream_events_in_total",
    "Learning events normalised, by inbound format.",
    ["source"],
    registry=REGISTRY,
)
RECORDS_IN = Counter(
    "tutorstream_records_in_total", "Raw records read from Kafka.", registry=REGISTRY
)
DLQ = Counter(
    "tutorstream_dlq_total",
    "Records sent to the dead-letter topic, by reason class.",
    ["reason"],
    registry=REGISTRY,
)
EXPIRED = Counter(
    "tutorstream_records_expired_total",
    "Records the topic's retention deleted before the group processed them (found at an "
    "assignment: the group's commit below the log's first offset). Each one is an event lost.",
    ["topic", "partition"],
    registry=REGISTRY,
)
DLQ_AGAIN = Counter(
    "tutorstream_dlq_again_total",
    "Bad records read again (a seek back to the commit) that already had their dead letter: "
    "not sent twice.",
    registry=REGISTRY,
)
UNMODELLED = Counter(
    "tutorstream_unmodelled_total",
    "Valid statements stored but not modelled (a verb or Caliper action the profile does not "
    "map, a Group actor, an object that is not an Activity), by verb and profile. Verbs past "
    "the first 200 distinct ones are counted as 'other'.",
    ["verb", "profile"],
    registry=REGISTRY,
)
DEFAULT_CLASS = Counter(
    "tutorstream_default_class_total",
    "Events whose profile found no class and that were modelled under the profile's default "
    "class, by profile.",
    ["profile"],
    registry=REGISTRY,
)
DUPLICATES = Counter(
    "tutorstream_duplicates_total", "Events dropped as duplicates by event id.", registry=REGISTRY
)
REDELIVERED = Counter(
    "tutorstream_redelivered_total",
    "Events skipped because the learner's state took in their record already (delivered again "
    "after a restart or a rebalance).",
    registry=REGISTRY,
)
LATE = Counter(
    "tutorstream_late_records_total",
    "Events processed although their learner's state had passed their record's offset (the "
    "record came out of order and the store did not hold it): each would have been lost had "
    "the offset alone decided.",
    registry=REGISTRY,
)
DELIVERY_HOLES = Counter(
    "tutorstream_delivery_holes_total",
    "Times Faust delivered a record after skipping some of its partition (fetched and dropped "
    "in a rebalance): the commit stays before them, and the worker reads every partition again "
    "from its committed offset.",
    registry=REGISTRY,
)
PARTITION_SEEKS = Counter(
    "tutorstream_partition_seeks_total",
    "Times the worker read its partitions again from their committed offsets, by reason: "
    "hole (records skipped), stall (a partition held records past its commit and delivered "
    "none for a whole check), rejoin (still stalled after a seek: the group was rejoined), "
    "restart (the agent restarted after a failure, its batch unacked).",
    ["reason"],
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "tutorstream_batch_size",
    "Records per micro-batch.",
    buckets=(1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048),
    registry=REGISTRY,
)
INFERENCE_LATENCY = Histogram(
    "tutorstream_inference_latency_seconds",
    "Time of one model call on a micro-batch.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
    registry=REGISTRY,
)
SINK_LATENCY = Histogram(
    "tutorstream_sink_latency_seconds",
    "Time to make one micro-batch durable in the store.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
SNAPSHOTS = Counter(
    "tutorstream_snapshots_total",
    "Snapshots of the learner, item and class tables written to their changelogs.",
    registry=REGISTRY,
)
SNAPSHOT_RECORDS = Counter(
    "tutorstream_snapshot_records_total",
    "Changelog records the snapshots wrote: one per key changed since the snapshot before.",
    registry=REGISTRY,
)
AWAITING_SNAPSHOT = Gauge(
    "tutorstream_records_awaiting_snapshot",
    "Records processed whose learner state waits for the next snapshot; they are acked by it.",
    registry=REGISTRY,
)
STAGE_SECONDS = Counter(
    "tutorstream_stage_seconds_total",
    "Wall time spent per pipeline stage (normalise, features, inference, policy, sink, publish,"
    " confirm, snapshot).",
    ["stage"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "tutorstream_consumer_lag",
    "Messages between the high watermark and the last processed offset, per partition.",
    ["topic", "partition"],
    registry=REGISTRY,
)
INTERVENTIONS = Counter(
    "tutorstream_interventions_total",
    "Interventions raised, by state and status.",
    ["state", "status"],
    registry=REGISTRY,
)
SUPPRESSED = Counter(
    "tutorstream_interventions_suppressed_total",
    "Detections that did not become interventions, by reason.",
    ["reason"],
    registry=REGISTRY,
)
RECOMMENDATIONS = Counter(
    "tutorstream_recommendations_total", "Next-item recommendations made.", registry=REGISTRY
)
MODEL_INFO = Gauge(
    "tutorstream_model_info",
    "The model in use (value 1), with its name, version and execution provider.",
    ["name", "version", "provider"],
    registry=REGISTRY,
)
EVENT_TO_INTERVENTION = Histogram(
    "tutorstream_event_to_intervention_seconds",
    "From the triggering record's Kafka timestamp to the intervention's publication.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
GRAFANA_ANNOTATIONS = Counter(
    "tutorstream_grafana_annotations_total",
    "Grafana annotations of new interventions: sent, retried, refused (4xx), dropped_failed "
    "(after the last try), dropped_queue_full.",
    ["outcome"],
    registry=REGISTRY,
)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Count the wall time of a pipeline stage into :data:`STAGE_SECONDS`."""
    start = time.perf_counter()
    try:
        yield
    finally:
        STAGE_SECONDS.labels(name).inc(time.perf_counter() - start)


_MAX_VERB_LABELS = 200
_verb_labels: set[str] = set()


def verb_label(verb: str) -> str:
    """Return ``verb`` as a metric label, or ``other`` once 200 distinct verbs are labelled.

    Producers choose their verbs freely; a bound keeps a misbehaving one from growing the
    metric's series without limit.
    """
    if verb in _verb_labels:
        return verb
    if len(_verb_labels) >= _MAX_VERB_LABELS:
        return "other"
    _verb_labels.add(verb)
    return verb
