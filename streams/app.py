"""The Faust app of a streaming worker: a thin adapter around :mod:`models.processor`.

One agent reads ``rapport.events`` in micro-batches (``take_events``), hands them to a
:class:`~models.processor.BatchProcessor` and publishes the outputs. The sessions a batch
changed are only marked dirty (:mod:`models.dirty_sessions`); a timer writes each dirty
session's checkpoint to the ``sessions`` table (a changelog-backed Faust table) about once per
``checkpoint_interval_s``, between batches and after its outputs are durable (producer
flush), and an offset commit (``streams/kafka.py``) never passes the first record of a change
not yet written and acknowledged. Hence, after any crash, the restored table matches the
committed offsets (or is ahead of them, and the records redelivered are recognised by offset
and skipped), and it is never ahead of the published outputs. A
session's final report is the exception to deferral: its closed marker is written as soon as
the report is on the broker, so a replay cannot publish it again; and should the worker die
between the two, whoever takes the partition over reads the reports published since the last
commit back and closes those sessions (``streams/report_log.py``; docs/streaming.md,
"Delivery guarantees").

A timer sends a *tick* (an empty record with header ``rapport-control: tick``) to every
partition this worker owns, so the stream clock of a quiet partition still moves and idle or
ended sessions close on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import TP, EventT
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from models import checkpoint
from models.config import EngineConfig, PipelineConfig
from models.delivery import DeliveryGuard, Verdict
from models.dirty_sessions import DirtySessions
from models.log_context import context
from models.processor import BatchProcessor
from models.records import new_input_record
from models.stream_session import (
    ClosedSession,
    SessionState,
    UnreadableState,
    load_state,
    reconcile,
)
from models.topics import DEFAULT_APP_ID, DEFAULT_PARTITIONS, KEY_SEPARATOR, SESSIONS_TABLE, Topics
from streams import full_collections, kafka, metrics
from streams.broker_probe import BrokerProbe
from streams.kafka_security import KafkaSecurity
from streams.lean_faust import QuietMonitor, RawBytes
from streams.recovery_watchdog import RecoveryWatchdog
from streams.report_log import ReportLog, watermark_key, watermark_partition
from streams.start_offsets import StartOffsets

log = logging.getLogger(__name__)

CONTROL_HEADER = "rapport-control"
TICK = b"tick"


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything a worker process needs; built once at the entry point (``rapport worker``)."""

    broker: str = "kafka://localhost:9092"
    security: KafkaSecurity = field(default_factory=KafkaSecurity)  # TLS/SASL (managed Kafka)
    app_id: str = DEFAULT_APP_ID
    topics: Topics = field(default_factory=Topics)
    partitions: int = DEFAULT_PARTITIONS
    declare_topics: bool = True  # False on the embedded broker (topics pre-created)
    # The broker is librdkafka's mock cluster (the embedded broker): the consumer overrides
    # that exist for its quirks apply (streams/kafka.py, 7; 1 and 6 by their settings below).
    embedded_broker: bool = False
    store: str = "memory://"  # "rocksdb://" in production (needs the rocksdict extra)
    data_dir: str = ".rapport-worker"  # Faust's state directory (RocksDB files)
    web_port: int | None = None  # /metrics; None disables the web server
    web_host: str = "127.0.0.1"
    batch_max: int = 2_000  # records per micro-batch at most
    batch_window_s: float = 0.05  # a partial batch is processed after this long
    # Records the agent's stream may hold unprocessed (Faust's stream_buffer_maxsize, 4,096
    # by default). When it is full Faust takes the partition out of the fetch, and once every
    # partition is out its fetch loop sleeps a whole second: on real Kafka one fetch (up to
    # 1 MB per partition) overfilled 4,096 records, and the worker stood idle 17-21 % of the
    # time while catching up (docs/streaming.md, "Performance").
    stream_buffer_max: int = 16_384
    tick_interval_s: float = 1.0
    # 10 on the embedded broker; None leaves Faust's 1,500 ms, which on real Kafka makes a
    # drained partition wait for the fetch in flight (streams/kafka.py, point 1).
    fetch_max_wait_ms: int | None = 500
    fetch_min_interval_ms: int = 0  # 20 on the embedded broker (streams/kafka.py, point 6)
    # Offsets are committed every commit_interval_s, up to the oldest change not checkpointed;
    # each changed session is checkpointed about once per checkpoint_interval_s, so the
    # committed offsets lag by about that long: longer means fewer writes, more replay.
    commit_interval_s: float = 2.0
    checkpoint_interval_s: float = 10.0
    # Python's full GC every this long instead of by allocation count (streams/
    # full_collections.py); None leaves CPython's own schedule (in-process tests).
    full_gc_interval_s: float | None = None
    # A worker that stops heartbeating (killed) loses its partitions after this long.
    session_timeout_s: float = 10.0
    engine: EngineConfig = field(default_factory=EngineConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    # A table recovery whose changelog partition applies nothing for this long while still
    # behind fetches it again (streams/recovery_watchdog.py); 0 turns that off.
    recovery_stall_s: float = 30.0
    # Crash tests only (RAPPORT_FAILPOINT): "after-report" exits the process right after a
    # report is on the broker, before its closed marker is written; "lose-changelog-record"
    # drops the last record a recovery needs of one changelog partition (streams/kafka.py).
    failpoint: str | None = None


class _App(faust.App):
    stop_hooks: list[Callable[[], Awaitable[None]]]
    transport_hooks: kafka.TransportHooks  # read by the consumer (streams/kafka.py)
    recovery_watchdog: RecoveryWatchdog | None = None

    def on_init_dependencies(self) -> Iterable[Any]:
        # Started with the app, before the first recovery, unlike Faust's timers.
        services = list(super().on_init_dependencies())
        if self.recovery_watchdog is not None:
            services.append(self.recovery_watchdog)
        return services

    def _new_transport(self) -> Any:
        return kafka.Transport(self.conf.broker_consumer, self)

    async def on_stop(self) -> None:
        await super().on_stop()
        for hook in getattr(self, "stop_hooks", ()):
            await hook()


def is_tick(headers: Any) -> bool:
    if not headers:
        return False
    items = headers.items() if isinstance(headers, dict) else headers
    return any(k == CONTROL_HEADER and v == TICK for k, v in items)


class Pipeline:
    """Per-process glue between Faust and the pure batch processor."""

    CHECKPOINT_SLICE = 64  # sessions written between two chances for the agent to run
    ROUND_S = 0.25  # how often checkpoint_round runs

    def __init__(self, app: faust.App, config: WorkerConfig, table: Any,
                 outputs: dict[str, Any]) -> None:
        self.app = app
        self.config = config
        self.table = table
        self.outputs = outputs
        self.processor = BatchProcessor(config.engine, config.pipeline)
        self.report_log = ReportLog(config.broker, config.topics.reports,
                                    config.fetch_max_wait_ms, config.security)
        # Faust's consumer group is the app id.
        self.start_offsets = StartOffsets(config.broker, config.app_id, config.topics.events,
                                          config.security)
        # Input partitions whose start offset was looked up since their assignment.
        self._started: set[int] = set()
        # States of partitions taken over, from the table, for the processor's first batch,
        # by session key ("clinic_id session_id", models/topics.py).
        self._restored: dict[int, list[tuple[str, SessionState | UnreadableState]]] = {}
        # Per owned partition, the reports watermark (streams/report_log.py): as known now,
        # and as last written to the table.
        self._watermarks: dict[int, int] = {}
        self._written_watermarks: dict[int, int] = {}
        # Sessions changed since their last write, and how far offsets may be committed.
        self.dirty: DirtySessions[SessionState | None] = DirtySessions()
        # A recent event per partition: the context a table write needs (see _write).
        self._latest: dict[int, EventT[Any]] = {}
        # Held while a batch is processed and while a commit picks its offsets.
        self._lock = asyncio.Lock()
        # Each partition's records applied once, in order, without holes (models/delivery.py).
        self.delivery = DeliveryGuard()
        # What the consumer calls back and reads (streams/kafka.py); build_app hands it to
        # the app. Only the worker's input is delivered inline, and kept in the fetch when its
        # buffer is full only on the embedded broker (no clear gain measured on real Kafka).
        inputs = frozenset({config.topics.events})
        self.hooks = kafka.TransportHooks(
            fetch_max_wait_ms=config.fetch_max_wait_ms,
            fetch_min_interval_ms=config.fetch_min_interval_ms,
            before_commit=self.commit, commit_ceiling=self.commit_ceiling,
            inline_topics=inputs,
            unpaused_topics=inputs if config.embedded_broker else frozenset(),
            lose_changelog_record=config.failpoint == "lose-changelog-record")

    async def handle(self, events: Sequence[EventT[Any]]) -> None:
        async with self._lock:
            await self._handle(events)

    async def _handle(self, events: Sequence[EventT[Any]]) -> None:
        started = time.perf_counter()
        latest = self._latest
        records = []
        first: dict[int, int] = {}  # partition -> the batch's lowest offset in it
        assigned = {event.message.partition for event in events} - self._started
        if assigned:
            await self._start(assigned)
        for event in await self._in_order(events):
            message = event.message
            latest[message.partition] = event
            first.setdefault(message.partition, message.offset)
            records.append(new_input_record(  # InputRecord's fields, in order
                message.value if message.value is not None else b"", message.partition,
                message.offset, int(message.timestamp * 1000), message.key, message.topic,
                is_tick(message.headers)))
        known = self.processor.partitions
        taken = {record.partition for record in records} - known
        if taken:
            await self._take_over(taken)
        result = self.processor.process(records, self._restore)
        # Dirty before the first await, so no checkpoint pass writes these states before
        # their outputs are flushed, and no commit passes their records.
        # (A change without a record of its partition in the batch cannot be dated: 0 holds
        # that partition's commits until the change is written.)
        mark = self.dirty.mark
        for key, (partition, state) in result.writes.items():
            mark(key, partition, state, first.get(partition, 0))
        reports = []
        for output in result.outputs:
            sent = await self.outputs[output.topic].send(
                key=output.key, value=output.value, partition=output.partition,
                headers=list(output.headers) or None)
            if output.topic == "reports":
                reports.append((output.partition, sent))
        closed = {k: v for k, v in result.writes.items() if isinstance(v[1], ClosedSession)}
        if closed:
            # A closed session's marker is persisted at once, not at the next commit: after a
            # crash the replayed events would otherwise publish its report a second time.
            await self._flush()  # the reports first
            for partition, sent in reports:
                offset = (await sent).offset
                self._watermarks[partition] = max(self._watermarks.get(partition, 0),
                                                  offset + 1)
            if self.config.failpoint == "after-report":
                log.critical("failpoint after-report: exiting before the closed markers")
                os._exit(70)
            for session_id, (partition, state) in closed.items():
                self._write(latest[partition], session_id.encode(), state)
            await self._flush()
            # Clean only once acknowledged: a commit meanwhile must not pass their records.
            for session_id in closed:
                self.dirty.discard(session_id)
        metrics.observe(result, int(time.time() * 1000), self.processor.open_sessions())
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        metrics.BATCH_RECORDS.observe(len(records))

    async def _in_order(self, events: Sequence[EventT[Any]]) -> list[EventT[Any]]:
        """The batch's records to apply: per partition in offset order, each once, none
        after a hole; for a hole, the partition is sought back to it (models/delivery.py)."""
        check = self.delivery.check
        now_ms = int(time.monotonic() * 1000)
        ordered = sorted(events, key=lambda e: (e.message.partition, e.message.offset))
        kept = []
        for event in ordered:
            message = event.message
            verdict, seek = check(message.partition, message.offset, now_ms)
            if verdict is Verdict.APPLY:
                kept.append(event)
                continue
            metrics.DELIVERY_ANOMALIES.labels(verdict.value).inc()
            if verdict is Verdict.AFTER_GAP:
                kept.append(event)
                log.warning("partition %d: offsets %d to %d not delivered %d s after seeking "
                            "back; taken as a gap in the log (retention, transaction "
                            "markers)", message.partition, seek, message.offset - 1,
                            self.delivery.patience_ms // 1000,
                            extra=context(topic=message.topic, partition=message.partition,
                                          offset=message.offset))
                continue
            if seek is not None:
                log.warning("partition %d: offset %d delivered before %d; seeking back",
                            message.partition, message.offset, seek,
                            extra=context(topic=message.topic, partition=message.partition,
                                          offset=message.offset))
                # Done by the consumer's fetch loop (streams/kafka.py, 5): it alone knows which
                # of the records it already fetched precede the seek.
                self.hooks.rewinds[TP(message.topic, message.partition)] = seek
        return kept

    async def _start(self, partitions: set[int]) -> None:
        """Partitions delivered for the first time since their assignment: each starts at
        the group's committed offset, so a first record after it is seen as one after a hole
        (streams/start_offsets.py)."""
        starts = await self.start_offsets.read(partitions)
        for partition in sorted(partitions):
            self._started.add(partition)
            start = starts.get(partition)
            if start is not None:
                self.delivery.start(partition, start)
                log.info("partition %d: starts at offset %d", partition, start,
                         extra=context(topic=self.config.topics.events, partition=partition))

    def commit_ceiling(self, tp: TP) -> int | None:
        """The highest offset of ``tp`` a commit may name: the next record to apply, and no
        record whose session's change is not written yet (models/dirty_sessions.py)."""
        if tp.topic != self.config.topics.events:
            return None
        return self.dirty.ceiling(tp.partition, self.delivery.next_offset(tp.partition))

    async def commit(self, commit: Callable[[], Awaitable[bool]]) -> bool:
        """Let Faust commit (it flushes the producer first and picks the acknowledged offsets,
        capped by :meth:`commit_ceiling`), after writing the reports watermarks.

        No session is written here: :meth:`checkpoint_round` writes them all the time, and a
        partition's commit stops short of the records of any change not written and
        acknowledged yet. So every session's state in the table includes every offset
        committed (docs/streaming.md, "Delivery guarantees"), and a commit neither holds
        batches off nor spends a burst of CPU on 2,000 checkpoints at once.
        """
        async with self._lock:  # no batch half-way through its closed markers
            # Every report before a partition's watermark has its closed marker written.
            self._write_watermarks(self._watermarks)
        # Faust's commit flushes the producer too, but its flush of the buffered table
        # writes gives up after 100 ms without progress (see _flush).
        await self._flush()
        return await commit()

    async def checkpoint_round(self) -> int:
        """Write the share of the dirty sessions that is due (each about once per
        ``checkpoint_interval_s``, oldest change first), yielding to batches every slice;
        returns how many were written.

        A state is written only if its outputs are durable: the producer is flushed after the
        sessions are picked, and a session a batch touched since (dirty again, closed, or its
        partition revoked) is skipped: it stays dirty for a later round. A session is clean
        only once its write is acknowledged, so no commit passes its records before."""
        started = time.perf_counter()
        async with self._lock:  # no batch half-sent: its outputs are with the producer
            due = self.dirty.due(self.ROUND_S / self.config.checkpoint_interval_s)
        if not due:
            return 0
        await self._flush()
        done = []
        for count, (session_id, entry) in enumerate(due, 1):
            if self.dirty.get(session_id) is not entry:
                continue
            event = self._latest.get(entry.partition)
            if event is None:
                continue
            self._write(event, session_id.encode(), entry.state)
            self.dirty.writing(session_id, entry)
            done.append((session_id, entry))
            if count % self.CHECKPOINT_SLICE == 0:
                await asyncio.sleep(0)
        await self._flush()
        for session_id, entry in done:
            # A session changed again meanwhile stays dirty, its older changes included.
            self.dirty.written(session_id, entry)
        if done:
            metrics.CHECKPOINT_SECONDS.observe(time.perf_counter() - started)
            metrics.CHECKPOINTS.inc(len(done))
        return len(done)

    async def _flush(self) -> None:
        """Everything sent so far, outputs and table writes, acknowledged by the broker.

        Faust's ``Producer.flush`` hands its buffer of table writes to the Kafka producer but
        gives up on it after 100 ms without progress (a busy loop), returning with writes still
        buffered; a closed marker left there is lost by a crash, and the report is published
        again on replay. Hence the loop."""
        producer = self.app.producer
        await producer.flush()
        while producer.buffer.size:
            await producer.flush()

    def _write(self, event: EventT[Any], key: bytes, state: SessionState | None) -> None:
        self._put(event, key, None if state is None else checkpoint.dump(state))

    def _put(self, event: EventT[Any], key: bytes, value: bytes | None) -> None:
        # Faust sends a table change to the changelog partition (and RocksDB shard) of the
        # "current event", a context variable set only while a stream yields one event; a
        # take_events() batch body runs outside it, so it is set to an event of the key's
        # own partition for the duration of the write. Private (docs/streaming.md, override
        # 9): without it Faust refuses the write (tests/kafka/test_unreadable_checkpoint.py).
        token = _current_event.set(weakref.ref(event))
        try:
            if value is None:
                if key in self.table:
                    del self.table[key]
            else:
                self.table[key] = value
        finally:
            _current_event.reset(token)

    def _write_watermarks(self, partitions: Iterable[int]) -> None:
        for partition in partitions:
            watermark = self._watermarks.get(partition)
            event = self._latest.get(partition)
            if watermark is None or event is None \
                    or self._written_watermarks.get(partition) == watermark:
                continue
            self._put(event, watermark_key(partition), b"%d" % watermark)
            self._written_watermarks[partition] = watermark

    async def _take_over(self, partitions: set[int]) -> None:
        """Partitions this worker starts processing (first batch after an assignment): their
        sessions from the table, reconciled with the reports already published (a report
        whose closed marker a dying worker did not write; streams/report_log.py)."""
        states: dict[int, list[tuple[str, SessionState]]] = {p: [] for p in partitions}
        unreadable: dict[int, list[UnreadableState]] = {p: [] for p in partitions}
        watermarks: dict[int, int] = {}
        legacy: list[tuple[bytes, SessionState]] = []
        for key, value in self.table.items():
            marked = watermark_partition(key)
            if marked is not None:
                if marked in partitions:
                    watermarks[marked] = int(value)
                continue
            try:
                state = load_state(value)
            except checkpoint.CheckpointError as error:
                # The processor dead-letters it and closes its session (models/processor.py);
                # raising here would fail every batch of the worker, again after each restart.
                partition = stored_partition(self.table, key)
                if partition is None:
                    metrics.CHECKPOINTS_UNREADABLE.inc()
                    log.error("session %r: persisted state unreadable (%s) and its partition "
                              "unknown; skipped", key, error)
                elif partition in partitions and KEY_SEPARATOR in key:
                    unreadable[partition].append(UnreadableState(
                        key.decode(errors="replace"), partition, value, str(error)))
                continue
            if state.partition not in partitions:
                continue
            if KEY_SEPARATOR not in key:
                legacy.append((key, state))
            else:
                states[state.partition].append((key.decode(), state))
        for key, state in legacy:
            # Keyed by session id alone (before issue 16): its events now arrive keyed by
            # clinic too, on another partition, so this entry can never be matched again.
            # docs/operations.md says to drain sessions before that upgrade.
            self._write(self._latest[state.partition], key, None)
            log.warning("session %s: entry keyed without its clinic (written before the "
                        "clinic was part of session keys) dropped", state.session_id,
                        extra=context(topic=self.config.topics.events,
                                      partition=state.partition))
        markers = 0
        for partition in sorted(partitions):
            where = context(topic=self.config.topics.events, partition=partition)
            published, end = await self.report_log.read(partition,
                                                        watermarks.get(partition, 0))
            kept, closed = reconcile(states[partition], published)
            for key, marker in closed:
                self._write(self._latest[partition], key.encode(), marker)
                log.warning("session %s: report already published (worker died before its "
                            "closed marker); closed without publishing again",
                            key, extra=where)
            markers += len(closed)
            # An unreadable entry of a session already reported is replaced by its marker.
            bad = [u for u in unreadable[partition] if u.key not in published]
            self._restored[partition] = [*kept, *((u.key, u) for u in bad)]
            for entry in bad:
                log.error("session %s: persisted state unreadable (%s; %d bytes, sha256 %s): "
                          "dead-lettered and closed as unreportable", entry.key,
                          entry.error, len(entry.data), entry.digest, extra=where)
            self._watermarks[partition] = end
            if watermarks.get(partition) is not None:
                self._written_watermarks[partition] = watermarks[partition]
            if kept:
                log.info("partition %d: restored %d session(s) from the changelog", partition,
                         len(kept), extra=where)
        if markers:
            await self._flush()
            metrics.CLOSED_FROM_REPORTS.inc(markers)

    def _restore(self, partition: int) -> list[tuple[str, SessionState | UnreadableState]]:
        return self._restored.pop(partition, [])

    async def revoke(self, revoked: set[TP]) -> None:
        """Hand revoked partitions over: persist their changed sessions, then forget them.

        Faust calls this after the agent has finished its batch and before any other worker
        gets the partitions. The sessions changed since the last commit are written now, not
        dropped: whether the offsets of their events got committed during the rebalance is not
        ours to know, and a state ahead of the committed offsets is safe (the next owner
        skips the records it already holds), while one behind them loses events."""
        partitions = {tp.partition for tp in revoked if tp.topic == self.config.topics.events}
        if partitions:
            for partition in sorted(partitions):
                log.info("partition %d revoked", partition,
                         extra=context(topic=self.config.topics.events, partition=partition))
            async with self._lock:
                handed = [item for item in self.dirty.entries()
                          if item[1].partition in partitions]
                if handed:
                    await self._flush()  # their outputs first
                    for session_id, entry in handed:
                        event = self._latest.get(entry.partition)
                        if event is not None:
                            self._write(event, session_id.encode(), entry.state)
                            metrics.CHECKPOINTS.inc()
                self._write_watermarks(partitions)
                await self._flush()
                # Clean only once acknowledged: a commit meanwhile must not pass them.
                self.dirty.forget(partitions)
                self.processor.revoke(partitions)
                self.delivery.forget(partitions)
                self._started -= partitions
                rewinds = self.hooks.rewinds
                for tp in [tp for tp in rewinds if tp.partition in partitions]:
                    del rewinds[tp]  # a new assignment starts at its committed offset
            for partition in partitions:
                self._latest.pop(partition, None)
                self._restored.pop(partition, None)
                self._watermarks.pop(partition, None)
                self._written_watermarks.pop(partition, None)
                with contextlib.suppress(KeyError):
                    metrics.CONSUMER_LAG.remove(str(partition))

    def observe_lag(self) -> None:
        """Records not yet processed, per owned partition (highwater - next to process)."""
        consumer = self.app.consumer
        for tp in consumer.assignment():
            if tp.topic != self.config.topics.events:
                continue
            latest = self._latest.get(tp.partition)
            done = latest.message.offset + 1 if latest is not None else 0
            try:
                highwater = consumer.highwater(tp)
            except (KeyError, AssertionError):
                continue
            if highwater is not None and highwater >= 0:
                metrics.CONSUMER_LAG.labels(str(tp.partition)).set(max(highwater - done, 0))

    def owned_event_partitions(self) -> Iterator[int]:
        for tp in self.app.consumer.assignment():
            if tp.topic == self.config.topics.events:
                yield tp.partition


def stored_partition(table: Any, key: bytes) -> int | None:
    """The changelog partition a table entry was recovered from, or ``None`` when its store
    does not say (an entry this process wrote itself, on the memory store).

    Reads private attributes of Faust's two stores (faust-streaming 0.15, pinned in
    pyproject.toml): the memory store records each recovered key's partition, the RocksDB
    store keeps one database per partition. Needed only for an entry that cannot be read,
    whose state would otherwise say it (docs/streaming.md, override 10;
    tests/kafka/test_unreadable_checkpoint.py fails without it)."""
    store = table.data
    recovered = getattr(store, "_key_partition", None)
    if isinstance(recovered, Mapping):
        partition = recovered.get(key)
        return partition if isinstance(partition, int) else None
    databases = getattr(store, "_dbs", None)
    if isinstance(databases, Mapping):
        for partition, db in databases.items():
            if db.get(key) is not None:
                return int(partition)
    return None


def build_app(config: WorkerConfig) -> tuple[faust.App, Pipeline]:
    """The worker's Faust app and its pipeline (agent, table, tick timer, /metrics page)."""
    app = _App(
        config.app_id,
        broker=config.broker,
        broker_credentials=config.security.faust_credentials(),
        store=config.store,
        datadir=config.data_dir,
        topic_partitions=config.partitions,
        topic_allow_declare=config.declare_topics,
        topic_disable_leader=True,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=config.commit_interval_s,
        # Commits (and checkpoints) by time only: Faust also commits every 10,000 records by
        # default, which on a busy worker means far more often than the interval says.
        broker_commit_every=2**62,
        broker_session_timeout=config.session_timeout_s,
        broker_heartbeat_interval=min(3.0, config.session_timeout_s / 3),
        producer_acks=-1,
        # Outputs of a batch go out in a few requests, not one each (at most 5 ms added).
        producer_linger=0.005,
        stream_buffer_maxsize=config.stream_buffer_max,
        web_enabled=config.web_port is not None,
        web_port=config.web_port or 6066,
        web_bind=config.web_host,
        web_host=config.web_host,
        # Faust's per-record statistics feed only its /stats pages (streams/lean_faust.py).
        Monitor=QuietMonitor,
    )
    topics = config.topics

    def topic(name: str) -> Any:
        # Keys and values are bytes, passed through without Faust's codec registry
        # (streams/lean_faust.py).
        return app.topic(name, schema=RawBytes(), partitions=config.partitions)

    events = topic(topics.events)
    outputs = {role: topic(name) for role, name in topics.outputs().items()}
    # Keys and checkpoints are bytes: the app's serializers ("raw") apply to the changelog.
    table = app.Table(SESSIONS_TABLE, default=None, key_type=bytes, value_type=bytes,
                      partitions=config.partitions)
    pipeline = Pipeline(app, config, table, outputs)
    app.stop_hooks = [pipeline.report_log.close, pipeline.start_offsets.close]
    app.transport_hooks = pipeline.hooks
    if config.recovery_stall_s > 0:
        app.recovery_watchdog = RecoveryWatchdog(app, config.recovery_stall_s)

    @app.agent(events, name="sessions")
    async def process(stream: Any) -> None:
        async for batch in stream.take_events(config.batch_max, within=config.batch_window_s):
            await pipeline.handle(batch)

    @app.timer(Pipeline.ROUND_S)  # type: ignore[untyped-decorator]
    async def checkpoint() -> None:
        await pipeline.checkpoint_round()

    if config.full_gc_interval_s is not None:
        full_collections.schedule()

        @app.timer(config.full_gc_interval_s)  # type: ignore[untyped-decorator]
        async def full_gc() -> None:
            full_collections.collect()

    @app.timer(config.tick_interval_s)  # type: ignore[untyped-decorator]
    async def tick() -> None:
        for partition in pipeline.owned_event_partitions():
            await events.send(value=b"", partition=partition, headers=[(CONTROL_HEADER, TICK)])
        pipeline.observe_lag()

    async def on_revoked(_sender: Any, *args: Any, signal: Any = None, **_: Any) -> None:
        await pipeline.revoke(args[0])  # the revoked set of TPs

    async def on_assigned(_sender: Any, *args: Any, signal: Any = None, **_: Any) -> None:
        owned = sorted(pipeline.owned_event_partitions())
        metrics.PARTITIONS_ASSIGNED.set(len(owned))
        log.info("partitions assigned: %s", owned)

    app.on_partitions_revoked.connect(on_revoked)  # type: ignore[arg-type]  # mode stub union
    app.on_partitions_assigned.connect(on_assigned)  # type: ignore[arg-type]

    @app.page("/metrics")
    async def metrics_page(web: Any, _request: Any) -> Any:
        return web.bytes(generate_latest(),
                         content_type=CONTENT_TYPE_LATEST.split(";")[0])

    probe = BrokerProbe(config.broker, config.security)

    @app.page("/healthz")
    async def healthz(web: Any, _request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, _request: Any) -> Any:
        problems = []
        broker_error = await probe.check()
        if broker_error:
            problems.append(f"broker: {broker_error}")
        if app.rebalancing:
            problems.append("rebalancing: partitions are being reassigned")
        owned = sorted(pipeline.owned_event_partitions())
        body = {"ready": not problems, "problems": problems, "partitions": owned}
        return web.json(body, status=200 if not problems else 503)

    return app, pipeline
