"""Worker records of simulated sessions, for tests, benchmarks and demos of the report store
(issue 5).

Runs the streaming workers' own logic (:class:`models.processor.BatchProcessor`, the code a
``rapport worker`` runs) over simulated wire-v1 events (models/simulation.py), so the
``quality``, ``alert`` and ``report`` records (models/records.py; METRICS.md §7, §10) are
exactly what the pipeline publishes for those sessions — without a broker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from models.config import PipelineConfig
from models.processor import BatchProcessor
from models.records import InputRecord
from models.simulation import SimulationConfig, simulate
from models.topics import session_key

log = logging.getLogger(__name__)

BATCH = 64
CLOCK_ORIGIN_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class SampleRecord:
    """One output record: ``role`` is ``quality``, ``alerts`` or ``reports`` (the topic's
    role in models.topics.Topics), ``key`` the session key (``clinic_id session_id``)."""

    role: str
    key: bytes | None
    value: bytes


def simulated_records(config: SimulationConfig, batch: int = BATCH) -> Iterator[SampleRecord]:
    """The quality, alert and report records of ``config``'s sessions, in publish order.
    Events are fed in micro-batches of ``batch`` records, one partition, 1 ms apart on the
    stream clock; a final tick closes every session (``session.end`` or idle timeout)."""
    processor = BatchProcessor(pipeline=PipelineConfig(end_grace_ms=0))
    clock, offset = CLOCK_ORIGIN_MS, 0
    pending: list[InputRecord] = []

    def flush(records: list[InputRecord]) -> Iterator[SampleRecord]:
        for output in processor.process(records, lambda _partition: []).outputs:
            if output.topic != "dlq":
                yield SampleRecord(output.topic, output.key, output.value)
            else:
                log.warning("simulated event rejected: %s", output.value[:200])

    clinics: dict[str, str] = {}  # a simulated session starts before its other events
    for event in simulate(config):
        clock, offset = clock + 1, offset + 1
        if event["type"] == "session.start":
            clinics[event["session_id"]] = event["clinic_id"]
        key = session_key(clinics[event["session_id"]], event["session_id"])
        pending.append(InputRecord(orjson.dumps(event), 0, offset, clock, key=key))
        if len(pending) >= batch:
            yield from flush(pending)
            pending = []
    if pending:
        yield from flush(pending)
    tick = clock + PipelineConfig().idle_timeout_ms + 1
    yield from flush([InputRecord(b"", 0, offset + 1, tick, control=True)])
