"""Settings of the stream workers, read from ``TUTORSTREAM_*`` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from common.settings import LOCAL_DATABASE_URL, LOCAL_KAFKA_BOOTSTRAP, CommonSettings
from schemas.profiles import ProfileSettings
from streams.annotations import GrafanaSettings
from streams.policy import PolicySettings
from streams.store.settings import StoreSettings


class StreamSettings(CommonSettings):
    """Everything a stream worker needs; each field names its environment variable.

    The mode, pseudonym key and topic prefix, and the production refusal of the development
    key, are :class:`~common.settings.CommonSettings`'.

    Attributes:
        kafka_bootstrap: ``TUTORSTREAM_KAFKA_BOOTSTRAP``, ``host:port[,host:port]``.
        database_url: ``TUTORSTREAM_DATABASE_URL``, libpq URL of the store.
        app_id: ``TUTORSTREAM_APP_ID``, Faust app id: the consumer group and table prefix.
        model: ``TUTORSTREAM_MODEL``, registry reference ``name@version`` or ``name@latest``.
        model_dir: ``TUTORSTREAM_MODEL_DIR``, extra registry root searched before the packaged one.
        model_threads: ``TUTORSTREAM_MODEL_THREADS``, onnxruntime threads inside an operator.
            One spends the least CPU per window on this small model (35 against 55 µs at two
            threads), and the worker's own loop needs the other cores.
        max_batch: ``TUTORSTREAM_MAX_BATCH``, most records per micro-batch.
        max_delay_ms: ``TUTORSTREAM_MAX_DELAY_MS``, how long a record that finds the worker
            idle waits for records still arriving (0: none). Records that came while a batch
            was processed make the next batch at once.
        dedupe_window_s: ``TUTORSTREAM_DEDUPE_WINDOW_S``, how long an event id is remembered.
        dedupe_max_ids: ``TUTORSTREAM_DEDUPE_MAX_IDS``, most event ids remembered per learner.
        web_port: ``TUTORSTREAM_WEB_PORT``, the worker's HTTP port (``/metrics``).
        data_dir: ``TUTORSTREAM_DATA_DIR``, where Faust keeps its local files.
        replication_factor: ``TUTORSTREAM_REPLICATION_FACTOR`` of the topics the worker
            creates (changelogs, the rekey topic); 3 on a production cluster.
        worker_id: ``TUTORSTREAM_WORKER_ID``, stable id for static group membership.
        publish_live: ``TUTORSTREAM_PUBLISH_LIVE``; a rebuild replay sets it off so history
            found again is not re-sent to tutors or learners.
        outbox_grace_s: ``TUTORSTREAM_OUTBOX_GRACE_S``, age after which a stored intervention
            not yet confirmed on its topic is published by the outbox sweep.
        session_timeout_s: ``TUTORSTREAM_SESSION_TIMEOUT_S``, how long the group waits for a
            silent worker before moving its partitions to the others.
        fetch_max_wait_ms: ``TUTORSTREAM_FETCH_MAX_WAIT_MS``, longest a fetch waits for data.
        event_loop: ``TUTORSTREAM_EVENT_LOOP``, the worker's event loop: ``uvloop`` (libuv, in C)
            or Python's own ``asyncio``. Every record, send and query passes through the loop
            several times, and the worker's main thread is its limit.
        compression: ``TUTORSTREAM_COMPRESSION``, codec of the record batches the worker
            writes (its table changelogs above all): ``snappy``, ``lz4``, ``zstd``, ``gzip`` or
            ``none``. The CPU per 9 KB learner record differs tenfold between them (see
            docs/configuration.md; lz4 here is LZ4 at level 9).
        snapshot_interval_s: ``TUTORSTREAM_SNAPSHOT_INTERVAL_S``, how often the learner, item
            and class state batches changed is written to the tables' changelogs, one record
            per changed key; records are acked (and their offsets committed) only by the
            snapshot after them. 0 writes after every batch. Longer writes less and leaves a
            replacement of a killed worker more records to take again.
        snapshot_max_records: ``TUTORSTREAM_SNAPSHOT_MAX_RECORDS``, most records processed
            between two snapshots, whatever the interval.
        stall_check_s: ``TUTORSTREAM_STALL_CHECK_S``, how often the worker checks for a
            partition that holds records past its commit and delivers none; one found stalled
            over a whole interval is read again from its commit.
        policy: ``TUTORSTREAM_POLICY__*``, the intervention policy.
        store: ``TUTORSTREAM_STORE__*``, the store and its sink.
        grafana: ``TUTORSTREAM_GRAFANA__*``, annotations of new interventions in Grafana
            (off unless ``TUTORSTREAM_GRAFANA__URL`` is set).
        profiles: ``TUTORSTREAM_PROFILES__FILES`` (comma-separated YAML files) and
            ``TUTORSTREAM_PROFILES__DEFAULT``: the statement profiles records are read with; a
            record names its producer's profile in the ``tutorstream-profile`` header.
    """

    kafka_bootstrap: str = LOCAL_KAFKA_BOOTSTRAP
    database_url: str = LOCAL_DATABASE_URL
    app_id: str = "tutorstream"
    model: str = "tutorstream-learner@latest"
    model_dir: str | None = None
    model_threads: int = Field(default=1, ge=1, le=64)
    max_batch: int = Field(default=2048, ge=1, le=10_000)
    max_delay_ms: float = Field(default=5.0, ge=0)
    dedupe_window_s: float = Field(default=3600.0, gt=0)
    dedupe_max_ids: int = Field(default=2048, ge=16)
    web_port: int = 6066
    data_dir: str = ".state/streams"
    replication_factor: int = Field(default=1, ge=1)
    worker_id: str | None = None
    publish_live: bool = True
    outbox_grace_s: float = Field(default=10.0, gt=0)
    session_timeout_s: float = Field(default=15.0, ge=6)
    fetch_max_wait_ms: int = Field(default=50, ge=1, le=1500)
    stall_check_s: float = Field(default=10.0, gt=0)
    snapshot_interval_s: float = Field(default=2.0, ge=0)
    snapshot_max_records: int = Field(default=50_000, ge=1)
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    compression: Literal["snappy", "lz4", "zstd", "gzip", "none"] = "snappy"
    policy: PolicySettings = Field(default_factory=PolicySettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    grafana: GrafanaSettings = Field(default_factory=GrafanaSettings)
    profiles: ProfileSettings = Field(default_factory=ProfileSettings)
