"""Publishing wire events into the events topic, batched per session, with backpressure
(``rapport run``).

Events are grouped per session into multi-event records (JSON lines, at most
``batch_events`` events or ``batch_bytes`` bytes; the caller ends a group with :meth:`end_group`
at each moment of its input, so grouping adds no delay), keyed by the session key (``clinic_id
session_id``, models/topics.py) so a session
stays on one partition and in order. Faust spends about 100 µs per record before any work is
done (docs/streaming.md, "Performance"), so fewer, fuller records carry several times more
events. The producer never runs more than ``max_backlog_bytes`` per partition ahead of what
the worker group has committed: the embedded broker keeps only about 5 MiB per partition and
silently drops older records, so a producer that outran the workers would lose events. For
the same reason an event over ``max_event_bytes`` is rejected here, at the edge, straight to
the dead-letter topic (a real Kafka broker would refuse it anyway; the workers apply the same
limit to records from other producers).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from models.errors import RapportError, ValidationError
from models.events import is_identifier
from models.records import RejectReason, Source, rejected_record
from models.topics import session_key
from streams.kafka_security import KafkaSecurity

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 16 * 1024 * 1024  # let oversized events reach the workers' DLQ


class FeedError(RapportError):
    """The events could not be published (broker unreachable, topic missing, ...)."""


def feed_key(line: bytes, clinics: Mapping[str, str]) -> bytes | None:
    """The Kafka key of a JSON line that is not a valid event: its session key when it names
    a session of a known clinic (models/topics.py), else its ``session_id`` or ``None``
    (the workers dead-letter it either way)."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    session_id = value.get("session_id") if isinstance(value, dict) else None
    if not isinstance(session_id, str) or not session_id:
        return None
    clinic = clinics.get(session_id)
    if clinic is not None and is_identifier(session_id):
        return session_key(clinic, session_id)
    return session_id.encode(errors="replace")


@dataclass(slots=True)
class FeedStats:
    published: int = 0  # events
    records: int = 0  # Kafka records carrying them
    rejected: int = 0  # oversized events sent to the dead-letter topic instead
    waited_s: float = 0.0  # time spent held back by backpressure


@dataclass(slots=True)
class _Written:
    """Per partition: end offset and cumulative bytes of delivered records, in order."""

    offsets: list[int] = field(default_factory=list)
    totals: list[int] = field(default_factory=list)

    def add(self, offset: int, size: int) -> None:
        self.offsets.append(offset + 1)
        self.totals.append((self.totals[-1] if self.totals else 0) + size)

    def bytes_after(self, committed: int) -> int:
        """Bytes delivered at or after offset ``committed``; forgets what is before it."""
        if not self.offsets:
            return 0
        cut = bisect.bisect_right(self.offsets, committed)
        before = self.totals[cut - 1] if cut else 0
        behind = self.totals[-1] - before
        if cut > 1:  # keep one entry as the base of the running total
            del self.offsets[: cut - 1]
            del self.totals[: cut - 1]
        return behind


class Feeder:
    def __init__(self, bootstrap: str, topic: str, group_id: str, dlq_topic: str, *,
                 max_event_bytes: int = 1_048_576, batch_events: int = 64,
                 batch_bytes: int = 256 * 1024, max_backlog_bytes: int = 2 * 1024 * 1024,
                 check_every: int = 200, security: KafkaSecurity | None = None) -> None:
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.group_id = group_id
        self.max_event_bytes = max_event_bytes
        self.batch_events = batch_events
        self.batch_bytes = batch_bytes
        self.max_backlog_bytes = max_backlog_bytes
        self.check_every = check_every
        self.stats = FeedStats()
        self._bootstrap = bootstrap
        auth = (security or KafkaSecurity()).client_kwargs()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=5,
            max_request_size=MAX_REQUEST_BYTES, **auth)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **auth)
        self._written: dict[int, _Written] = {}
        self._groups: dict[bytes, list[bytes]] = {}
        self._group_bytes: dict[bytes, int] = {}
        self._since_check = 0

    async def start(self) -> None:
        try:
            await self._producer.start()
            await self._admin.start()
        except KafkaError as error:
            raise FeedError(f"cannot connect to {self._bootstrap}: {error}") from None

    async def close(self) -> None:
        await self._producer.stop()
        await self._admin.close()

    async def publish(self, line: bytes, key: bytes | None = None, *, origin: str = "",
                      number: int = -1) -> None:
        """Queue one event (raw JSON bytes) in its session's group; an event naming no session
        goes out alone. ``origin``/``number`` (e.g. file and line) locate an event rejected
        here. Waits while the workers are too far behind."""
        if len(line) > self.max_event_bytes:
            await self._reject_oversized(line, key, origin, number)
            return
        self.stats.published += 1
        if key is None:
            await self._send(line, None)
            return
        group = self._groups.setdefault(key, [])
        group.append(line)
        size = self._group_bytes[key] = self._group_bytes.get(key, 0) + len(line) + 1
        if len(group) >= self.batch_events or size >= self.batch_bytes:
            await self._send_group(key)

    async def end_group(self) -> None:
        """Send every session's queued events (call at each new moment of the input)."""
        for key in list(self._groups):
            await self._send_group(key)

    async def flush(self) -> None:
        await self.end_group()
        await self._producer.flush()

    async def _send_group(self, key: bytes) -> None:
        lines = self._groups.pop(key)
        del self._group_bytes[key]
        await self._send(b"\n".join(lines), key)

    async def _send(self, value: bytes, key: bytes | None) -> None:
        if self._since_check >= self.check_every:
            self._since_check = 0
            await self._wait_for_room()
        self._since_check += 1
        future = await self._producer.send(self.topic, value, key=key)
        size = len(value)
        future.add_done_callback(lambda done: self._delivered(done, size))
        self.stats.records += 1

    async def _reject_oversized(self, line: bytes, key: bytes | None, origin: str,
                                number: int) -> None:
        error = ValidationError("event", f"{len(line)} bytes exceeds "
                                f"max_event_bytes={self.max_event_bytes}")
        record = rejected_record(
            RejectReason.TOO_LARGE, error, Source(origin, -1, number, int(time.time() * 1000),
                                                  line),
            session_id=key.decode() if key else None)
        await self._producer.send(self.dlq_topic, orjson.dumps(record), key=key)
        self.stats.rejected += 1
        log.warning("%s:%d: %s", origin or "input", number, error)

    def _delivered(self, future: asyncio.Future[object], size: int) -> None:
        if future.cancelled() or future.exception() is not None:
            log.error("events not delivered: %s", future.exception())
            return
        metadata = future.result()
        partition, offset = metadata.partition, metadata.offset  # type: ignore[attr-defined]
        self._written.setdefault(partition, _Written()).add(offset, size)

    async def backlog(self) -> int:
        """Bytes published but not yet committed by the worker group, on the partition
        furthest behind."""
        await self._producer.flush()
        if not self._written:
            return 0
        # Partitions named explicitly: the embedded broker cannot list "all of the group's".
        wanted = [TopicPartition(self.topic, p) for p in sorted(self._written)]
        offsets = await self._admin.list_consumer_group_offsets(self.group_id,
                                                                partitions=wanted)
        committed = {tp.partition: meta.offset for tp, meta in offsets.items()
                     if tp.topic == self.topic and meta.offset >= 0}
        return max(written.bytes_after(committed.get(p, 0))
                   for p, written in self._written.items())

    async def _wait_for_room(self) -> None:
        started = time.monotonic()
        announced = False
        while (behind := await self.backlog()) > self.max_backlog_bytes:
            if not announced:
                log.info("holding back: workers are %d bytes behind", behind)
                announced = True
            await asyncio.sleep(0.2)
        self.stats.waited_s += time.monotonic() - started
