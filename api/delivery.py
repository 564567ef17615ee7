"""Producing records from request handlers, with the broker's confirmation awaited.

An endpoint that accepts events answers only after the broker has acknowledged every record
(``acks=all``, idempotent producer), so an acknowledged event is never lost. One producer serves
the whole process; a thread serves its delivery reports and wakes the waiting request.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from api.exceptions import Unavailable
from common.kafka import producer_config
from common.settings import KafkaSecurity

log = logging.getLogger(__name__)

PRODUCER_OVERRIDES: Final[dict[str, Any]] = {
    # A request waits for its records; a short linger still batches concurrent requests.
    "linger.ms": 2,
    "queue.buffering.max.messages": 500_000,
}
"""Where the API's producer differs from :func:`common.kafka.producer_config`."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce: topic, key (the learner's pseudonym) and value (JSON bytes)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class _Batch:
    """The records of one request still waiting for their delivery reports."""

    __slots__ = ("error", "future", "left", "lock", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.left = count
        self.error: str | None = None
        self.lock = threading.Lock()

    def report(self, err: KafkaError | None, _message: Message | None = None) -> None:
        """Count one record as settled; runs on the polling thread (or the loop, on refusal)."""
        with self.lock:
            if err is not None and self.error is None:
                self.error = err.str()
            self.left -= 1
            done = self.left == 0
        if done:
            self.loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        if self.future.done():
            return
        if self.error is None:
            self.future.set_result(None)
        else:
            self.future.set_exception(Unavailable(f"the broker refused a record: {self.error}"))


class Delivery:
    """A shared idempotent producer whose sends complete when the broker confirms them.

    Args:
        bootstrap: the broker (``TUTORSTREAM_KAFKA_BOOTSTRAP``).
        timeout_s: longest wait for a confirmation (``TUTORSTREAM_API__DELIVERY_TIMEOUT_S``).
        security: TLS and SASL (``TUTORSTREAM_KAFKA_SECURITY__*``); ``None`` reads the
            environment.
        overrides: extra producer settings.
    """

    def __init__(
        self,
        bootstrap: str,
        timeout_s: float = 10.0,
        *,
        security: KafkaSecurity | None = None,
        **overrides: Any,
    ) -> None:
        config = producer_config(
            bootstrap,
            security=security,
            **{**PRODUCER_OVERRIDES, "message.timeout.ms": int(timeout_s * 1000), **overrides},
        )
        self.timeout_s = timeout_s
        self._config = config
        self._producer: Producer | None = None
        self._running = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Create the producer and the thread serving its delivery reports."""
        self._producer = Producer(self._config)
        self._running = True
        self._thread = threading.Thread(target=self._poll, name="api-delivery", daemon=True)
        self._thread.start()

    @property
    def producer(self) -> Producer:
        """The producer, once started.

        Raises:
            Unavailable: before :meth:`start`.
        """
        if self._producer is None:
            raise Unavailable("the producer is not started")
        return self._producer

    def _poll(self) -> None:
        producer = self.producer
        while self._running:
            producer.poll(0.05)

    async def send(self, records: Iterable[Outgoing]) -> int:
        """Produce every record and wait until the broker has confirmed all of them.

        Returns:
            The number of records confirmed.

        Raises:
            Unavailable: when a record is refused or not confirmed within the timeout.
        """
        batch_records = list(records)
        if not batch_records:
            return 0
        loop = asyncio.get_running_loop()
        batch = _Batch(loop, len(batch_records))
        produce = self.producer.produce
        for record in batch_records:
            while True:
                try:
                    if record.headers:
                        produce(
                            record.topic,
                            record.value,
                            record.key,
                            headers=list(record.headers),
                            on_delivery=batch.report,
                        )
                    else:
                        produce(record.topic, record.value, record.key, on_delivery=batch.report)
                    break
                except BufferError:
                    # The local queue is full; the polling thread drains it.
                    await asyncio.sleep(0.005)
                except KafkaException as err:
                    # Records already queued still report; wait for them before failing.
                    batch.report(err.args[0])
                    break
        try:
            await asyncio.wait_for(asyncio.shield(batch.future), self.timeout_s + 1.0)
        except TimeoutError as err:
            raise Unavailable("the broker did not confirm the records in time") from err
        return len(batch_records)

    def topics(self, timeout_s: float = 3.0) -> dict[str, int]:
        """Return the broker's topics with their partition counts (a blocking call).

        Raises:
            Unavailable: when the broker does not answer.
        """
        try:
            metadata = self.producer.list_topics(timeout=timeout_s)
        except KafkaException as err:
            raise Unavailable(f"the broker did not answer: {err.args[0].str()}") from err
        return {
            name: len(topic.partitions)
            for name, topic in metadata.topics.items()
            if topic.error is None
        }

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout_s``) and stop the polling thread."""
        if self._producer is None:
            return
        deadline = time.monotonic() + timeout_s
        left = self._producer.flush(timeout_s)
        if left:
            log.warning("%d records were not confirmed before shutdown", left)
        self._running = False
        if self._thread is not None:
            self._thread.join(max(0.1, deadline - time.monotonic()))
