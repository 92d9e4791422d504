"""Where the ingest service puts what it accepts: ``rapport.events`` and its dead-letter topic.

:class:`Publisher` is the interface every ingest path uses (HTTP batches, the WebSocket, the
WebRTC peers); :class:`KafkaPublisher` is the real one, :class:`MemoryPublisher` an in-memory
sink with the same behaviour for tests and demos.

Guarantees of :class:`KafkaPublisher`:

- every event is keyed by its ``session_id`` (a session stays on one partition, in order);
- a session's events published together share records, as JSON lines (at most
  ``GROUP_EVENTS`` events or ``GROUP_BYTES`` bytes each, :func:`coalesce`), as the records of
  ``rapport run`` do (models/records.py): the workers' cost is mostly per Kafka record, so a
  session's events of one moment in one record roughly triple what a worker sustains
  (bench/pipeline.py);
- the producer is idempotent (``enable_idempotence=True``, ``acks=all``): aiokafka's retries
  after a broker hiccup never duplicate or reorder a record;
- :meth:`Publisher.publish` returns only once the broker has stored every record, so an HTTP
  ``202`` means "durably in Kafka". While the broker is briefly unavailable the producer buffers
  and retries for up to ``delivery_timeout_s``; at most ``max_pending`` records wait at once,
  and a publish that would exceed it fails at once with :class:`PublishError` ("buffer full"),
  which the HTTP layer answers with ``503`` and ``Retry-After``: nothing accepted is lost,
  nothing unbounded is held.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from models.errors import RapportError
from models.topics import Topics
from streams.kafka_security import KafkaSecurity

log = logging.getLogger(__name__)

Destination = Literal["events", "dlq"]
MAX_RECORD_BYTES = 2 * 1024 * 1024  # an event is at most the HTTP body limit, plus envelope
# A record of a session's events holds at most this many (as rapport run's, services/feeder.py),
# well under the workers' max_record_bytes (1 MiB), above which a record is rejected whole.
GROUP_EVENTS = 64
GROUP_BYTES = 256 * 1024


class PublishError(RapportError):
    """Records could not be stored (broker unavailable past the timeout, or buffer full)."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to publish: wire-v1 JSON to ``events``, or a rejected record to ``dlq``."""

    destination: Destination
    key: bytes | None
    value: bytes


@dataclass(slots=True)
class _Group:
    """Events of one session on their way into one record."""

    key: bytes
    lines: list[bytes]
    size: int


def coalesce(records: Sequence[Outgoing], *, max_events: int = GROUP_EVENTS,
             max_bytes: int = GROUP_BYTES) -> list[Outgoing]:
    """The events of each session in ``records`` joined as JSON lines into as few records as
    the limits allow, in their order per session (records of different sessions are not
    ordered relative to each other on Kafka anyway). Dead-letter records, events without a
    key and any value holding a newline go out unchanged, where they were."""
    out: list[Outgoing | _Group] = []
    open_groups: dict[bytes, _Group] = {}
    for record in records:
        key = record.key
        if record.destination != "events" or key is None or b"\n" in record.value:
            if record.destination == "events" and key is not None:
                open_groups.pop(key, None)  # its session's later events go after it
            out.append(record)
            continue
        size = len(record.value) + 1
        group = open_groups.get(key)
        if group is not None and len(group.lines) < max_events \
                and group.size + size <= max_bytes:
            group.lines.append(record.value)
            group.size += size
            continue
        group = open_groups[key] = _Group(key, [record.value], size)
        out.append(group)
    return [item if isinstance(item, Outgoing) else
            Outgoing("events", item.key, b"\n".join(item.lines)) for item in out]


class Publisher(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, records: Sequence[Outgoing]) -> None:
        """Store ``records`` in order; return when all are stored, else raise PublishError."""
        ...


@dataclass(slots=True)
class MemoryPublisher:
    """In-memory sink: keeps every record per destination (tests, demos), each event as its
    own record (it does not :func:`coalesce`). ``fail`` makes the next publishes raise
    :class:`PublishError`, like an unreachable broker."""

    events: list[Outgoing] = field(default_factory=list)
    dlq: list[Outgoing] = field(default_factory=list)
    fail: bool = False
    started: bool = False
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self.started = True

    async def close(self) -> None:
        self.started = False

    async def publish(self, records: Sequence[Outgoing]) -> None:
        if self.fail:
            raise PublishError("memory publisher set to fail")
        for record in records:
            (self.events if record.destination == "events" else self.dlq).append(record)
        self.changed.set()


class KafkaPublisher:
    """aiokafka producer, idempotent, bounded: see the module docstring."""

    def __init__(self, bootstrap: str, topics: Topics | None = None, *,
                 max_pending: int = 50_000, delivery_timeout_s: float = 30.0,
                 security: KafkaSecurity | None = None) -> None:
        self.topics = topics or Topics()
        self.bootstrap = bootstrap
        self.max_pending = max_pending
        self.pending = 0
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=5,
            max_request_size=MAX_RECORD_BYTES,
            request_timeout_ms=int(delivery_timeout_s * 1000),
            **(security or KafkaSecurity()).client_kwargs())

    async def start(self) -> None:
        try:
            await self._producer.start()
        except KafkaError as error:
            raise PublishError(f"cannot connect to the broker at {self.bootstrap}: "
                               f"{error}") from None

    async def close(self) -> None:
        await self._producer.stop()

    async def publish(self, records: Sequence[Outgoing]) -> None:
        if not records:
            return
        if self.pending + len(records) > self.max_pending:
            raise PublishError(f"ingest buffer full ({self.pending} records waiting for the "
                               "broker); retry later")
        self.pending += len(records)
        try:
            futures = []
            for record in coalesce(records):
                topic = self.topics.events if record.destination == "events" \
                    else self.topics.dlq
                futures.append(await self._producer.send(topic, record.value, key=record.key))
            await asyncio.gather(*futures)
        except KafkaError as error:
            raise PublishError(f"broker did not store the records: {error}") from None
        finally:
            self.pending -= len(records)


class LiveEmitter:
    """Ordered, non-blocking publishing for the WebRTC peers (which produce events from packet
    handlers and timers and must never wait for the broker).

    Records queue here (at most ``max_queued``) and one task publishes them in order, in
    batches, retrying with backoff while the publisher fails. When the queue is full the
    newest record is dropped with an error log naming only its session: a bounded loss,
    reported, instead of unbounded memory.
    """

    def __init__(self, publisher: Publisher, *, max_queued: int = 100_000,
                 retry_s: float = 0.5) -> None:
        self.publisher = publisher
        self.max_queued = max_queued
        self.retry_s = retry_s
        self.dropped = 0
        self._queue: list[Outgoing] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ingest-live-emitter")

    def emit(self, record: Outgoing) -> None:
        if len(self._queue) >= self.max_queued:
            self.dropped += 1
            log.error("live events queue full: dropped an event of session %s",
                      (record.key or b"?").decode(errors="replace"))
            return
        self._queue.append(record)
        self._idle.clear()
        self._wake.set()

    async def drain(self) -> None:
        """Wait until everything emitted so far is published."""
        await self._idle.wait()

    async def close(self) -> None:
        """Publish what is queued (bounded by the publisher's own timeout), then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _run(self) -> None:
        delay = self.retry_s
        while True:
            if not self._queue:
                self._idle.set()
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._queue[:1000]
            try:
                await self.publisher.publish(batch)
            except PublishError as error:
                if self._closing:
                    log.error("dropping %d live events at shutdown: %s", len(self._queue),
                              error)
                    self._queue.clear()
                    continue
                log.warning("live events not published yet (%s); retrying in %.1f s",
                            error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = self.retry_s
            del self._queue[: len(batch)]
