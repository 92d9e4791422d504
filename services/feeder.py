"""Publishing wire events into the events topic, with backpressure (``rapport run``).

Each event is keyed by its ``session_id`` (so a session stays on one partition and in order).
The producer never runs more than ``max_backlog`` records ahead of what the worker group has
committed: the embedded broker keeps only about 5 MiB per partition and silently drops older
records, so a producer that outran the workers would lose events. For the same reason an
event over ``max_event_bytes`` is rejected here, at the edge, straight to the dead-letter
topic (a real Kafka broker would refuse it anyway; the workers apply the same limit to records
from other producers).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from models.errors import RapportError, ValidationError
from models.records import RejectReason, Source, rejected_record

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 16 * 1024 * 1024  # let oversized events reach the workers' DLQ


class FeedError(RapportError):
    """The events could not be published (broker unreachable, topic missing, ...)."""


def session_key(line: bytes) -> bytes | None:
    """The ``session_id`` of a JSON line as a Kafka key, or ``None`` if it names none."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    session_id = value.get("session_id") if isinstance(value, dict) else None
    return session_id.encode() if isinstance(session_id, str) and session_id else None


@dataclass(slots=True)
class FeedStats:
    published: int = 0
    rejected: int = 0  # oversized events sent to the dead-letter topic instead
    waited_s: float = 0.0  # time spent held back by backpressure


class Feeder:
    def __init__(self, bootstrap: str, topic: str, group_id: str, dlq_topic: str, *,
                 max_event_bytes: int = 1_048_576, max_backlog: int = 20_000,
                 check_every: int = 1_000) -> None:
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.max_event_bytes = max_event_bytes
        self.group_id = group_id
        self.max_backlog = max_backlog
        self.check_every = check_every
        self.stats = FeedStats()
        self._bootstrap = bootstrap
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=5,
            max_request_size=MAX_REQUEST_BYTES)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self._produced: dict[int, int] = {}  # partition -> next offset
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
        """Publish one event (raw JSON bytes); waits while the workers are too far behind.
        ``origin``/``number`` (e.g. file and line) locate an event rejected here."""
        if len(line) > self.max_event_bytes:
            await self._reject_oversized(line, key, origin, number)
            return
        if self._since_check >= self.check_every:
            self._since_check = 0
            await self._wait_for_room()
        self._since_check += 1
        future = await self._producer.send(self.topic, line, key=key)
        future.add_done_callback(self._delivered)
        self.stats.published += 1

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

    async def flush(self) -> None:
        await self._producer.flush()

    def _delivered(self, future: asyncio.Future[object]) -> None:
        if future.cancelled() or future.exception() is not None:
            log.error("event not delivered: %s", future.exception())
            return
        metadata = future.result()
        partition, offset = metadata.partition, metadata.offset  # type: ignore[attr-defined]
        if offset + 1 > self._produced.get(partition, 0):
            self._produced[partition] = offset + 1

    async def backlog(self) -> int:
        """Records published but not yet committed by the worker group."""
        await self._producer.flush()
        if not self._produced:
            return 0
        # Partitions named explicitly: the embedded broker cannot list "all of the group's".
        wanted = [TopicPartition(self.topic, p) for p in sorted(self._produced)]
        offsets = await self._admin.list_consumer_group_offsets(self.group_id,
                                                                partitions=wanted)
        committed = {tp.partition: meta.offset for tp, meta in offsets.items()
                     if tp.topic == self.topic and meta.offset >= 0}
        return sum(max(end - committed.get(p, 0), 0) for p, end in self._produced.items())

    async def _wait_for_room(self) -> None:
        started = time.monotonic()
        announced = False
        while (behind := await self.backlog()) > self.max_backlog:
            if not announced:
                log.info("holding back: workers are %d records behind", behind)
                announced = True
            await asyncio.sleep(0.2)
        self.stats.waited_s += time.monotonic() - started
