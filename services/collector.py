"""Reading the workers' outputs back (``rapport run``): final reports, alerts, dead letters.

Reports are deduplicated by ``session_id`` (the pipeline publishes each once, but a worker
killed at the wrong instant may repeat one; see docs/streaming.md), written out as one
METRICS.md §10 JSON object per line, and counted for progress and for ``--exit-when-done``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from models.topics import Topics
from streams.kafka_security import KafkaSecurity

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CollectStats:
    reports: int = 0
    repeated_reports: int = 0
    unreportable: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    quality_updates: int = 0


class Collector:
    """Consumes the output topics from the beginning (no consumer group)."""

    def __init__(self, bootstrap: str, topics: Topics,
                 on_report: Callable[[dict[str, Any]], None],
                 on_dead_letter: Callable[[dict[str, Any]], None] | None = None, *,
                 security: KafkaSecurity | None = None) -> None:
        self.topics = topics
        self.stats = CollectStats()
        # Sessions with a report or reported unreportable, by "clinic_id session_id".
        self.done: set[str] = set()
        self._on_report = on_report
        self._on_dead_letter = on_dead_letter
        self._consumer = AIOKafkaConsumer(
            topics.reports, topics.alerts, topics.dlq, topics.quality,
            bootstrap_servers=bootstrap, auto_offset_reset="earliest",
            enable_auto_commit=False, group_id=None, fetch_max_wait_ms=50,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            **(security or KafkaSecurity()).client_kwargs())

    async def start(self) -> None:
        await self._consumer.start()

    async def close(self) -> None:
        await self._consumer.stop()

    async def poll(self, timeout_ms: int = 200) -> None:
        batches = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=5_000)
        for tp, messages in batches.items():
            for message in messages:
                self._take(tp.topic, message.value)

    def _take(self, topic: str, value: bytes) -> None:
        try:
            record = orjson.loads(value)
        except orjson.JSONDecodeError:
            log.warning("unreadable record on %s", topic)
            return
        stats = self.stats
        if topic == self.topics.quality:
            stats.quality_updates += 1
        elif topic == self.topics.alerts:
            stats.alerts[record["alert"]["alert"]] += 1
        elif topic == self.topics.dlq:
            stats.rejected[record["reason"]] += 1
            if self._on_dead_letter is not None:
                self._on_dead_letter(record)
            if record["reason"] == "unreportable" and record["session_id"]:
                stats.unreportable += 1
                self.done.add(f"{record['clinic_id']} {record['session_id']}")
                log.warning("session %s closed without a report: %s", record["session_id"],
                            record["error"])
        elif topic == self.topics.reports:
            session = f"{record['clinic_id']} {record['session_id']}"
            if session in self.done:
                stats.repeated_reports += 1
                return
            self.done.add(session)
            stats.reports += 1
            self._on_report(record["report"])
