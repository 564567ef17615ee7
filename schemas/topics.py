"""The topic catalogue: every Kafka topic tutorstream reads or writes, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

DAY_MS = 24 * 60 * 60 * 1000


class CleanupPolicy(StrEnum):
    """Kafka ``cleanup.policy`` values used here."""

    DELETE = "delete"
    COMPACT = "compact"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic's name, layout and retention, and the schema of its values.

    Every topic is keyed by the pseudonymous learner id, so one learner's records stay in order
    on one partition and one worker owns that learner's state.
    """

    name: str
    partitions: int
    value_schema: str
    description: str
    key: str = "pseudonymous learner id"
    cleanup_policy: CleanupPolicy = CleanupPolicy.DELETE
    retention_ms: int | None = None
    replication_factor: int = 1
    extra_config: dict[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, str]:
        """Return the topic-level configuration passed to ``CreateTopics``."""
        cfg = {"cleanup.policy": self.cleanup_policy.value}
        if self.retention_ms is not None:
            cfg["retention.ms"] = str(self.retention_ms)
        cfg.update(self.extra_config)
        return cfg


LMS_EVENTS = TopicSpec(
    name="lms.events.v1",
    partitions=12,
    value_schema="xAPI statement | Caliper envelope | NativeEvent (raw, as sent)",
    description="Raw learning events from LMS producers and the ingest API.",
    # Replay rebuilds history from here, so keep well past the longest replay window.
    retention_ms=30 * DAY_MS,
)
LMS_EVENTS_DLQ = TopicSpec(
    name="lms.events.dlq.v1",
    partitions=3,
    value_schema="DeadLetter",
    description="Records that failed validation: original bytes, error, source offset.",
    retention_ms=30 * DAY_MS,
)
TUTOR_INTERVENTIONS = TopicSpec(
    name="tutor.interventions.v1",
    partitions=6,
    value_schema="Intervention",
    description="Interventions for tutors (pending review or sent).",
    retention_ms=14 * DAY_MS,
)
TUTOR_RECOMMENDATIONS = TopicSpec(
    name="tutor.recommendations.v1",
    partitions=6,
    value_schema="Recommendation",
    description="Next-item recommendations per learner; compacted to the latest per learner.",
    cleanup_policy=CleanupPolicy.COMPACT,
)
LEARNER_PROMPTS = TopicSpec(
    name="learner.prompts.v1",
    partitions=6,
    value_schema="LearnerPrompt",
    description="Tutor-approved metacognitive prompts to deliver to learners.",
    retention_ms=14 * DAY_MS,
)

CATALOGUE: tuple[TopicSpec, ...] = (
    LMS_EVENTS,
    LMS_EVENTS_DLQ,
    TUTOR_INTERVENTIONS,
    TUTOR_RECOMMENDATIONS,
    LEARNER_PROMPTS,
)


def prefixed(prefix: str, specs: tuple[TopicSpec, ...] = CATALOGUE) -> list[TopicSpec]:
    """Return ``specs`` under names that start with ``prefix`` (``TUTORSTREAM_TOPIC_PREFIX``)."""
    return [replace(spec, name=f"{prefix}{spec.name}") for spec in specs]


def by_name(name: str) -> TopicSpec:
    """Return the catalogue entry for ``name``.

    Raises:
        KeyError: when the topic is not in the catalogue.
    """
    for spec in CATALOGUE:
        if spec.name == name:
            return spec
    raise KeyError(name)
