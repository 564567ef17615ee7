"""Records straight from Faust's fetch loop into the worker's batch queue.

Faust hands each fetched record to its streams through the conductor: the record's handler
takes the flow-control and producer-buffer checks, decodes it into an event, puts the event in
the stream's buffer, and the agent's stream takes it out again, one async-iterator step at a
time, before the worker puts it in its own batch queue. Measured with py-spy on `tutorstream
bench pipeline`, that path was the largest share of the worker's main thread that the rebuild
replay does not have; and the stream buffer it fills is the one Faust clears on every flow
resume.

:func:`deliver_directly` gives the source partitions a handler of the worker's own instead:
the record, as Faust's consumer made it, goes to the batch queue, where the worker acks it
itself once its batch is durable (``Message.ack``, as the stream's ack did). What stays
Faust's: the fetch loop, the flow control (a handler waits while it is suspended, and a
rebalance abandons a waiting hand-over as before), the offsets read and committed, the
rebalances and the tables. What goes: the event object, the stream buffer, the stream's
iteration and the producer-buffer check (the worker writes its changelogs itself, never through
that buffer).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any

Handler = Callable[[Any], Awaitable[None]]
"""What Faust's fetch loop awaits for each record of a partition: ``handler(message)``."""


def deliver_directly(conductor: Any, topics: Collection[str], handler: Handler) -> None:
    """Make ``conductor`` hand the records of ``topics`` to ``handler``.

    Faust builds one handler per assigned partition at every assignment; this wraps that
    builder on this conductor alone, so the partitions of any other topic (the tables'
    changelogs) keep Faust's own.

    Args:
        conductor: the app's topic conductor (``app.topics``).
        topics: names of the topics whose records go to ``handler``.
        handler: an async callable taking Faust's ``Message``.
    """
    build = conductor._build_handler
    names = frozenset(topics)

    def build_handler(tp: Any, channels: Any) -> Any:
        return handler if tp.topic in names else build(tp, channels)

    conductor._build_handler = build_handler
