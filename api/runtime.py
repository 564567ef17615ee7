"""What the endpoints share while the app runs: settings, pool, producer, live feed, metrics."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import HTTPConnection

from api.auth import Authenticator
from api.delivery import Delivery
from api.exceptions import BadRequest
from api.feed import InterventionFeed
from api.keys import Principal
from api.settings import ApiSettings
from api.statements import StatementPreparer
from api.store import Store
from schemas.normalise import pseudonymiser_for
from schemas.profiles.compiled import CompiledProfile, compile_profiles
from schemas.pseudonym import Pseudonymiser
from schemas.topics import LEARNER_PROMPTS, LMS_EVENTS, TUTOR_INTERVENTIONS

_FAST: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class Metrics:
    """The API's Prometheus metrics, in a registry of their own (one per app)."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "tutorstream_api_requests", "HTTP requests.", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "tutorstream_api_request_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            buckets=_FAST,
            registry=r,
        )
        self.events_accepted = Counter(
            "tutorstream_api_events_accepted",
            "Learning events accepted and confirmed on lms.events.v1.",
            ["format"],
            registry=r,
        )
        self.events_unmodelled = Counter(
            "tutorstream_api_events_unmodelled",
            "Valid statements accepted that the model does not use, by verb and profile (verbs "
            "past the first 200 distinct ones counted as 'other').",
            ["verb", "profile"],
            registry=r,
        )
        self._verbs: set[str] = set()
        self.events_rejected = Counter(
            "tutorstream_api_events_rejected",
            "Requests refused for an invalid learning event.",
            ["format"],
            registry=r,
        )
        self.feed_clients = Gauge(
            "tutorstream_api_feed_clients", "Live-feed connections open.", ["kind"], registry=r
        )
        self.feed_lag = Histogram(
            "tutorstream_api_feed_lag_seconds",
            "Age of an intervention when this instance reads it from the topic.",
            buckets=_FAST,
            registry=r,
        )
        self.feed_sent = Counter(
            "tutorstream_api_feed_sent", "Interventions sent to live-feed clients.", registry=r
        )
        self.actions = Counter(
            "tutorstream_api_intervention_actions",
            "Tutor actions recorded, by action.",
            ["action"],
            registry=r,
        )


_MAX_VERB_LABELS: Final = 200


def count_unmodelled(metrics: Metrics, verbs: list[str], profile: str) -> None:
    """Count accepted statements the model does not use, by verb (bounded) and profile."""
    for verb in verbs:
        label = verb
        if verb not in metrics._verbs:
            if len(metrics._verbs) >= _MAX_VERB_LABELS:
                label = "other"
            else:
                metrics._verbs.add(verb)
        metrics.events_unmodelled.labels(label, profile).inc()


@dataclass
class Runtime:
    """Everything the endpoints reach through ``request.app.state.runtime``."""

    settings: ApiSettings
    store: Store
    delivery: Delivery
    feed: InterventionFeed
    authenticator: Authenticator
    pseudonymiser: Pseudonymiser
    preparer: StatementPreparer
    metrics: Metrics
    lms_topic: str
    interventions_topic: str
    prompts_topic: str
    profiles: dict[str, CompiledProfile]
    default_profile: str

    def profile_for(self, caller: Principal) -> CompiledProfile:
        """Return the statement profile the caller's key reads statements with.

        Raises:
            BadRequest: when the key names a profile this API does not load.
        """
        found = self.profiles.get(caller.profile or self.default_profile)
        if found is None:
            raise BadRequest(
                f"the key's statement profile {caller.profile!r} is not loaded here (loaded: "
                f"{', '.join(sorted(self.profiles))}); set TUTORSTREAM_PROFILES__FILES",
                "header.Authorization",
            )
        return found

    @classmethod
    def build(cls, settings: ApiSettings, metrics: Metrics) -> Runtime:
        """Create the parts (nothing connects until the app starts)."""
        options = settings.api
        store = Store(
            settings.database_url,
            settings.store.db_schema,
            min_size=options.pool_min,
            max_size=options.pool_max,
        )
        pseudonymiser = pseudonymiser_for(settings.pseudonym_key_bytes())
        # a profile file with an error stops the API here, naming file, line and field
        profiles = settings.profiles.load()
        interventions_topic = settings.topic(TUTOR_INTERVENTIONS.name)
        return cls(
            settings=settings,
            store=store,
            delivery=Delivery(
                settings.kafka_bootstrap,
                options.delivery_timeout_s,
                security=settings.kafka_security,
            ),
            feed=InterventionFeed(
                settings.kafka_bootstrap,
                interventions_topic,
                options.instance_id,
                queue_max=options.feed_queue_max,
                replay_timeout_s=options.feed_replay_timeout_s,
                on_record=metrics.feed_lag.observe,
                security=settings.kafka_security,
            ),
            authenticator=Authenticator(
                store, options.key_cache_s, options.rate_per_s, options.rate_burst
            ),
            pseudonymiser=pseudonymiser,
            preparer=StatementPreparer(pseudonymiser, settings.public_url),
            metrics=metrics,
            lms_topic=settings.topic(LMS_EVENTS.name),
            interventions_topic=interventions_topic,
            prompts_topic=settings.topic(LEARNER_PROMPTS.name),
            profiles=compile_profiles(profiles),
            default_profile=profiles.default,
        )


def runtime_of(connection: HTTPConnection) -> Runtime:
    """Return the runtime of the app serving ``connection``."""
    runtime: Runtime = connection.app.state.runtime
    return runtime


async def principal(connection: HTTPConnection) -> Principal:
    """FastAPI dependency: the checked caller of a request (401/429 otherwise)."""
    return await runtime_of(connection).authenticator.authenticate(connection)


def utc_now() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


_JSON_TYPE: Final = re.compile(r"^application/(?:[\w.+-]+\+)?json\s*(?:;.*)?$", re.IGNORECASE)


def is_json(content_type: str | None) -> bool:
    """Return whether a Content-Type names JSON (``application/json``, ``…+json``)."""
    return content_type is not None and _JSON_TYPE.fullmatch(content_type.strip()) is not None
