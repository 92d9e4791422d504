"""The store consumer (issue 5, "Report store"): fills the report store from the workers'
topics ``rapport.reports``, ``rapport.quality`` and ``rapport.alerts`` (models/topics.py).

One aiokafka consumer in the group ``rapport-reports`` reads the three topics and hands every
record to :meth:`~services.store.ReportStore.add_record`: final reports (METRICS.md §10), the
classified timeline events of quality updates (§2–§6) and alert transitions (§7). The store's
writes are idempotent (once per session id, per timeline ``n``, per alert transition), so the
consumer commits a partition's offsets only *after* its records are written, and a crash or a
rebalance merely writes some records again, changing nothing (at-least-once delivery,
effectively-once storage).

- A record the store rejects as invalid (:class:`~models.errors.ValidationError`, naming the
  field) is logged with its topic, partition and offset, counted in :attr:`stats`, and
  skipped: it would fail the same way forever.
- A record of a session whose client has no recorded consent to analysis, in a clinic that
  requires it (:class:`~services.store.directory.ConsentMissing`; issue 19, point 4), is
  dropped (what the session already left is deleted), counted (``no_consent``) and logged with
  pseudonyms only: platforms writing straight into Kafka bypass the ingest's check, not this.
- A :class:`~services.store.StoreError` (database down, locked) is retried with exponential
  backoff (``retry_initial_s`` doubling to ``retry_max_s``) without committing, so nothing is
  lost; :attr:`ConsumerStats.store_down` says so for readiness checks (issue 6).

Store writes run in a worker thread (``asyncio.to_thread``): the event loop, which may also be
serving the report pages and the ingest API, stays responsive. :class:`StoreConsumer` has
``start()`` / ``run()`` / ``stop()`` for ``rapport run`` and ``rapport reports --broker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from models.errors import ValidationError
from models.log_context import context
from models.topics import Topics
from services.reports import metrics
from services.store import ReportStore, StoreError
from services.store.directory import ConsentMissing
from streams.broker_probe import bootstrap_servers
from streams.kafka_security import KafkaSecurity

log = logging.getLogger(__name__)

GROUP_ID = "rapport-reports"
# How long stop() waits for the group coordinator to confirm that the consumer left: with the
# broker gone, aiokafka would wait its 40 s request timeout. Offsets are committed before this
# point; an unconfirmed leave only means the coordinator drops the member at its session
# timeout. (`rapport run` hit it on every SIGTERM until 2026-12-06, when its signal handling
# cancelled aiokafka's own tasks along with the job's: services/cli/job.py.)
LEAVE_TIMEOUT_S = 5.0




@dataclass(slots=True)
class ConsumerStats:
    """What the consumer did: records by topic, outcome counts, and the store's state."""

    consumed: Counter[str] = field(default_factory=Counter)  # by topic
    written: int = 0  # records that changed the store
    unchanged: int = 0  # redeliveries: already stored, nothing changed
    invalid: Counter[str] = field(default_factory=Counter)  # by topic
    no_consent: int = 0  # records dropped: a client without consent (issue 19)
    store_failures: int = 0  # StoreErrors, each followed by a retry
    commits: int = 0
    store_down: bool = False
    last_error: str | None = None


class StoreConsumer:
    """Consumes the worker output topics into ``store`` (see the module docstring)."""

    def __init__(self, store: ReportStore, bootstrap: str, topics: Topics | None = None, *,
                 group_id: str = GROUP_ID, max_records: int = 500,
                 retry_initial_s: float = 0.5, retry_max_s: float = 30.0,
                 poll_timeout_ms: int = 500, security: KafkaSecurity | None = None,
                 **consumer_options: Any) -> None:
        self.store = store
        self.topics = topics or Topics()
        self.group_id = group_id
        self.stats = ConsumerStats()
        self._bootstrap = bootstrap_servers(bootstrap)
        self._max_records = max_records
        self._retry = (retry_initial_s, retry_max_s)
        self._poll_timeout_ms = poll_timeout_ms
        self._options = {**(security or KafkaSecurity()).client_kwargs(), **consumer_options}
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self._running = False
        self._stopped_running = asyncio.Event()

    @property
    def names(self) -> tuple[str, str, str]:
        return self.topics.reports, self.topics.quality, self.topics.alerts

    @property
    def started(self) -> bool:
        return self._consumer is not None

    def assigned(self) -> int:
        """Partitions currently assigned to this consumer (0 before the group settles)."""
        return len(self._consumer.assignment()) if self._consumer is not None else 0

    async def start(self) -> None:
        """Connect and join the consumer group (new groups start at the earliest offsets)."""
        options: dict[str, Any] = {"auto_offset_reset": "earliest", "fetch_max_wait_ms": 100,
                                   "max_partition_fetch_bytes": 16 * 1024 * 1024,
                                   **self._options}
        consumer = AIOKafkaConsumer(*self.names, bootstrap_servers=self._bootstrap,
                                    group_id=self.group_id, enable_auto_commit=False,
                                    **options)
        await consumer.start()
        self._consumer = consumer
        log.info("store consumer joined group %s on %s (%s)", self.group_id, self._bootstrap,
                 ", ".join(self.names))

    async def run(self) -> None:
        """Consume, write, commit, until :meth:`stop`."""
        consumer = self._require()
        self._running = True
        self._stopped_running.clear()
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=self._poll_timeout_ms,
                                                 max_records=self._max_records)
                for tp, messages in batches.items():
                    if not messages or self._stopping.is_set():
                        continue
                    if not await self._write(tp, messages):
                        return  # stopping while the store was down: nothing committed
                    await self._commit(consumer, tp, messages[-1].offset + 1)
        finally:
            self._running = False
            self._stopped_running.set()

    async def poll_once(self) -> int:
        """One fetch, write and commit round (tests and hosts with their own loop); returns
        how many records it handled."""
        consumer = self._require()
        handled = 0
        batches = await consumer.getmany(timeout_ms=self._poll_timeout_ms,
                                         max_records=self._max_records)
        for tp, messages in batches.items():
            if messages and await self._write(tp, messages):
                await self._commit(consumer, tp, messages[-1].offset + 1)
                handled += len(messages)
        return handled

    async def stop(self) -> None:
        """Finish the batch in hand (committing it if written), leave the group, close."""
        self._stopping.set()
        if self._running:
            await self._stopped_running.wait()
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            try:
                await asyncio.wait_for(consumer.stop(), LEAVE_TIMEOUT_S)
            except KafkaError:
                pass
            except asyncio.TimeoutError:
                log.info("store consumer: the group coordinator did not confirm the leave "
                         "within %.0f s; closing anyway (offsets are committed)",
                         LEAVE_TIMEOUT_S)
        log.info("store consumer stopped: %d written, %d unchanged, %d invalid",
                 self.stats.written, self.stats.unchanged, sum(self.stats.invalid.values()))

    # --- internals ------------------------------------------------------------------------

    def _require(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("StoreConsumer.start() first")
        return self._consumer

    async def _write(self, tp: TopicPartition, messages: Sequence[Any]) -> bool:
        """Write one partition's batch, retrying while the store is down; False if asked to
        stop before it succeeded."""
        delay, ceiling = self._retry
        while True:
            try:
                outcomes = await asyncio.to_thread(self._write_batch, tp, messages)
            except StoreError as error:
                stats = self.stats
                stats.store_failures += 1
                metrics.STORE_FAILURES.inc()
                stats.store_down, stats.last_error = True, str(error)
                log.warning("report store unavailable (%s); retrying %s[%d] from offset %d "
                            "in %.1f s", error, tp.topic, tp.partition, messages[0].offset,
                            delay)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                if self._stopping.is_set():
                    return False
                delay = min(delay * 2, ceiling)
                continue
            if self.stats.store_down:
                log.info("report store is back")
            self.stats.store_down = False
            changed, unchanged, refused = outcomes
            self.stats.written += changed
            self.stats.unchanged += unchanged
            self.stats.no_consent += refused
            if refused:
                metrics.STORE_WRITES.labels(self._kind(tp.topic), "no_consent").inc(refused)
            metrics.count_writes(self._kind(tp.topic), changed, unchanged,
                                 len(messages) - changed - unchanged - refused)
            self.stats.consumed[tp.topic] += len(messages)
            return True

    def _kind(self, topic: str) -> str:
        """``report``, ``quality`` or ``alert``: the metric label of a topic's records."""
        for role, name in self.topics.outputs().items():
            if name == topic:
                return metrics.KINDS.get(role, role)
        return topic

    def _write_batch(self, tp: TopicPartition, messages: Sequence[Any]
                     ) -> tuple[int, int, int]:
        """In a worker thread: store every record; invalid ones are logged and skipped.
        A StoreError aborts the batch (the caller retries it; writes are idempotent)."""
        changed = unchanged = refused = 0
        for message in messages:
            try:
                outcome = self.store.add_record(message.value)
            except StoreError:
                raise
            except ConsentMissing as error:
                refused += 1
                log.warning("record at %s[%d]@%d dropped: %s", tp.topic, tp.partition,
                            message.offset, error, extra=context(
                                topic=tp.topic, partition=tp.partition, offset=message.offset,
                                session=error.session_id))
                continue
            except ValidationError as error:
                self.stats.invalid[tp.topic] += 1
                log.warning("invalid record at %s[%d]@%d skipped: %s", tp.topic, tp.partition,
                            message.offset, error, extra=context(
                                topic=tp.topic, partition=tp.partition, offset=message.offset,
                                field=error.field))
                continue
            except Exception:  # a record that breaks the store's code must not block forever
                self.stats.invalid[tp.topic] += 1
                log.exception("record at %s[%d]@%d could not be stored; skipped", tp.topic,
                              tp.partition, message.offset, extra=context(
                                  topic=tp.topic, partition=tp.partition,
                                  offset=message.offset))
                continue
            if outcome:
                changed += 1
            else:
                unchanged += 1
        return changed, unchanged, refused

    async def _commit(self, consumer: AIOKafkaConsumer, tp: TopicPartition,
                      offset: int) -> None:
        try:
            await consumer.commit({tp: offset})
            self.stats.commits += 1
        except KafkaError as error:
            # Typically a rebalance took the partition away: its new owner re-reads from the
            # last commit and the idempotent store ignores what was already written.
            log.warning("commit of %s[%d]@%d failed (%s); records will be redelivered",
                        tp.topic, tp.partition, offset, error)
