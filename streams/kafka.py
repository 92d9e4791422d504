"""Faust's aiokafka transport with the hooks Faust does not offer.

Each override below is needed on real Kafka (docs/streaming.md, "Faust and aiokafka
overrides", names the test on real Kafka that fails without it, or the measurement), or exists
for a quirk of the embedded broker (librdkafka's mock cluster) and applies only there (6, 7):
on real Kafka those private attributes are left untouched.

1. The consumer's fetch wait. Faust builds its worker consumer with ``fetch_max_wait_ms=1500``
   and offers no setting for it. librdkafka's mock cluster (the embedded broker) holds every
   fetch for the full wait even when data is there: up to 1.5 s on every event's latency.
   Real Kafka answers a fetch once data arrives for a partition *in the request*, but aiokafka
   keeps one fetch in flight per broker, and a partition whose records the worker has just
   taken joins only the next request: it waits for the one in flight, up to the full wait
   when the partitions in it are quiet. On real Kafka with 2,000 live sessions
   (bench/pipeline.py phase 5) Faust's 1,500 ms gave update latency p50 / p99 475 / 1,261 ms,
   500 ms minutes later 222 / 833 ms. The wait is set from ``fetch_max_wait_ms`` when the
   consumer is created (aiokafka reads it at ``start()``): 10 ms on the embedded broker,
   500 ms on Kafka; ``None`` leaves Faust's.
2. A step before every offset commit (``before_commit``): the pipeline writes its reports
   watermarks and waits until its table writes are acknowledged. The sessions themselves are
   written between commits, each once per checkpoint interval instead of once per batch
   (Kafka Streams' record cache, in effect), and the commit is capped (point 5) before the
   oldest change not yet written, so committed offsets never run ahead of the state.
3. Delivering fetched messages to the agent's stream. Faust's fetch loop
   (``Consumer._drain_messages``) hands over every message as
   ``wait_first(callback(message), suspend_flow.wait())``: four tasks and an ``asyncio.wait``
   per message, about 40 µs, more than a whole event costs Rapport. Nearly always the callback
   (decode, put into the stream's buffer) finishes without waiting for anything, so this
   consumer runs it inline and falls back to Faust's way only when it has to wait (the
   stream's buffer is full, flow control, producer backlog): then, as in Faust, the delivery
   is abandoned if a rebalance suspends the flow or the consumer stops meanwhile. Only the
   input topics (``inline_topics``) take this path, and only while the flow runs: changelog
   records (table recovery) and deliveries during a rebalance go Faust's way. The rest
   of the loop (read offsets, offset gaps, ``broker_commit_every``) does what Faust's does.
4. Group errors reach the consumer. aiokafka's group coordinator hands an error it cannot
   handle itself (an unexpected SyncGroup answer, say) to "the user" and then waits until the
   user has seen it before rejoining; aiokafka's own ``getmany`` lets it see the error, but
   Faust fetches through the fetcher directly and never does. The worker then silently stops
   heartbeating and loses every partition while looking alive. Seen on the embedded broker,
   whose group coordinator answers a follower's SyncGroup with InvalidRequest when the
   leader's arrived first (two workers joining at once on a busy machine). This consumer
   thread looks for such an error every second and logs it, so the coordinator rejoins;
   errors no rejoin cures (authorization; a session timeout, group id or protocol the broker
   refuses) stop the worker. Both brokers: aiokafka's waiting does not depend on the broker
   (tests/kafka/test_group_errors.py: a JoinGroup refused on real Kafka).
5. What may be committed. Faust commits, per partition, the end of the first run of
   acknowledged offsets, even when that run starts after a record never acknowledged; and
   around a rebalance records were seen delivered twice, out of order or not at all. The
   pipeline applies each partition's records strictly in order (models/delivery.py) and this
   consumer never commits past the next record it has to apply, nor past the first record of
   a session change not yet checkpointed (``commit_ceiling``; models/dirty_sessions.py). For a
   hole, the pipeline asks for the partition to be fetched again from it (``rewinds``); the
   fetch loop seeks there and drops what it had already fetched of that partition.
6. Fetch pacing. The embedded broker answers a fetch with at most one producer batch per
   partition ("FIXME: Multiple messageSets?" in librdkafka's mock cluster), so under a steady
   load the fetch loop sends a request the moment the last one returns, each carrying a batch
   or two: at 2,000 real-time sessions the requests and their parsing took a tenth of the
   worker's CPU. With ``fetch_min_interval_ms`` set, a fetch to a broker waits until that long
   after the previous one, so each carries what accumulated on every partition meanwhile (at
   most that long added to a record's latency). Real Kafka gets the same from
   ``fetch.min.bytes``; the worker sets the interval on the embedded broker only (0, real
   Kafka, leaves aiokafka's fetcher untouched). A worker
   that is behind is not paced: when a fetch finds more than ``FETCH_BACKLOG_RECORDS`` records
   waiting on one of its partitions (the response's high watermark minus the fetched offset),
   the next fetch goes out at once, since every fetch then carries a full batch per partition
   and waiting would only cap the rate at which the worker catches up.
7. No pause for a full stream buffer. When the agent's buffer fills, Faust takes the partition
   out of the fetch ("buffer full") until it drains; once every partition is out, its fetch
   loop sleeps a whole second (``Consumer._wait_next_records``) while the agent empties the
   buffer in a fraction of that: a worker catching up stood still for 0.6-0.9 s after every
   full batch, half its time. The input topics (``unpaused_topics``) are never taken out:
   delivering into a full buffer waits until the agent takes a batch, which is backpressure
   enough (aiokafka fetches a partition again only once its last fetch is read). Embedded
   broker only (``unpaused_topics`` empty on real Kafka, where the worker gained 6-11 % from
   it, within the noise of the measurement: docs/streaming.md).
8. An idempotent producer. Outside exactly-once processing Faust builds its aiokafka producer
   without ``enable_idempotence``, so a batch the broker stored but could not acknowledge (the
   broker died with the request in flight) is sent again when the producer retries, and the
   topic holds it twice: tests/kafka/test_kafka_operations.py saw a final report published
   twice after the only broker was killed and restarted. This producer is always idempotent
   (with ``acks=all``, which idempotence requires and the worker sets anyway), so the broker
   drops such a retry. Faust offers no setting for it; the override is
   ``Producer._settings_extra``.

The hooks and settings named above (``fetch_max_wait_ms``, ``before_commit``, ...) are the
fields of one :class:`TransportHooks` per worker, built by ``streams.app`` and carried by the
app (``app.transport_hooks``), where the consumer and its thread find them (both have
``.app``). None of it is module-level state: two apps in one process do not share it.

All these overrides are private API of faust-streaming, aiokafka and mode-streaming: their
versions are pinned in constraints.txt (the Makefile installs with it) to those they were
written against, pyproject.toml keeps them within the compatible minor versions, and the tests
docs/streaming.md names (tests/kafka on real Kafka, tests/component, and
tests/integration/test_pipeline.py on the embedded broker) cover them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiokafka
from aiokafka import errors as kafka_errors
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode import Service

# A partition with more records than this waiting behind a fetch means the worker is behind:
# the next fetch is not paced (6). Real time at 2,000 sessions leaves about 5 per 20 ms.
FETCH_BACKLOG_RECORDS = 256

log = logging.getLogger(__name__)
# Errors no rejoin cures (aiokafka logs the last three as "fatal"): they stop the worker (4).
_FATAL_GROUP_ERRORS = (kafka_errors.GroupAuthorizationFailedError,
                       kafka_errors.TopicAuthorizationFailedError,
                       kafka_errors.InvalidSessionTimeoutError,
                       kafka_errors.InvalidGroupIdError,
                       kafka_errors.InconsistentGroupProtocolError)


@dataclass(frozen=True, slots=True)
class TransportHooks:
    """What one worker's consumer needs from the worker (numbers as in the module docstring).

    Built once per app (``streams.app.Pipeline``) and set as ``app.transport_hooks`` by
    ``build_app`` before the worker starts. The defaults are Faust's behaviour (point 4 and
    the idempotent producer, 8, always apply). Frozen, except the contents of
    :attr:`rewinds`, which the pipeline fills and the fetch loop empties while the worker
    runs."""

    # The consumer's fetch wait (1); None leaves Faust's (1,500 ms): real Kafka.
    fetch_max_wait_ms: int | None = None
    # Least time between two fetch requests to one broker (6); 0 fetches as aiokafka does.
    fetch_min_interval_ms: int = 0
    # Runs every offset commit; given the commit itself, so it can hold batches off (2).
    before_commit: Callable[[Callable[[], Awaitable[bool]]], Awaitable[bool]] | None = None
    # The highest offset the worker may commit per partition (5), None for no limit.
    commit_ceiling: Callable[[Any], int | None] | None = None
    # Topics whose messages are delivered inline (3): the worker's input, not the changelogs.
    inline_topics: frozenset[str] = frozenset()
    # Topics whose partitions stay in the fetch while the agent's buffer is full (7).
    unpaused_topics: frozenset[str] = frozenset()
    # Partitions the pipeline found a hole in, and the offset to fetch them from again (5).
    rewinds: dict[Any, int] = field(default_factory=dict)
    # Failpoint lose-changelog-record (tests only): the first changelog record fetched
    # during a table recovery that is the last its partition needs is dropped, as if lost
    # between the fetch and the table (streams/recovery_watchdog.py).
    lose_changelog_record: bool = False


def hooks_of(app: Any) -> TransportHooks:
    """The hooks of ``app`` (its ``transport_hooks``); an app built without them gets the
    defaults of :class:`TransportHooks`."""
    hooks = getattr(app, "transport_hooks", None)
    return hooks if isinstance(hooks, TransportHooks) else TransportHooks()


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        wait_ms = hooks_of(self.app).fetch_max_wait_ms
        if wait_ms is not None:  # the embedded broker only (1)
            # Private aiokafka attribute: the only hook, read when the fetcher is created.
            consumer._fetch_max_wait_ms = wait_ms
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        interval_ms = hooks_of(self.app).fetch_min_interval_ms
        # 0 (real Kafka): aiokafka's fetcher is left as it is (6).
        if interval_ms > 0 and self._consumer is not None:
            _pace_fetches(self._consumer._fetcher, interval_ms / 1000)

    @Service.timer(1.0)
    async def _surface_group_errors(self) -> None:
        """See the module docstring (4). Runs on the consumer thread's own loop, which the
        group coordinator's futures belong to."""
        coordinator = getattr(self._consumer, "_coordinator", None)
        if coordinator is None:
            return
        try:
            coordinator.check_errors()
        except _FATAL_GROUP_ERRORS:
            raise  # crashes the worker: better than owning nothing while looking alive
        except kafka_errors.KafkaError as error:
            log.warning("consumer group error, rejoining: %r", error)


class _Consumer(faust_aiokafka.Consumer):
    _lost_changelog_record = False  # failpoint lose-changelog-record spent (TransportHooks)

    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def on_buffer_full(self, tp: Any) -> None:
        # See the module docstring (7).
        if tp.topic not in hooks_of(self.app).unpaused_topics:
            super().on_buffer_full(tp)

    async def _deliver(self, delivery: Awaitable[Any]) -> None:
        if not isinstance(delivery, Coroutine):  # not Faust's async on_message: its way
            await self.wait_first(delivery, self.suspend_flow.wait())
            return
        try:
            waiting_on = delivery.send(None)
        except StopIteration:
            return  # delivered without waiting: the usual case
        await self.wait_first(_resume(delivery, waiting_on), self.suspend_flow.wait())

    async def _drain_messages(self, fetcher: Any) -> None:
        # See the module docstring (3): Faust's fetch loop with inline delivery.
        read_offset = self._read_offset
        commit_every = self._commit_every
        hooks = hooks_of(self.app)
        rewinds, inline_topics = hooks.rewinds, hooks.inline_topics
        lose_changelog_record = hooks.lose_changelog_record and not self._lost_changelog_record
        acks_enabled_for = self.app.topics.acks_enabled_for
        callback = self.callback
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records = self.getmany(timeout=1.0)
                await asyncio.sleep(0)  # getmany may return at once, repeatedly
                if self.should_stop:
                    continue
                rewound: set[Any] = set()
                async for tp, message in records:
                    if rewinds:
                        rewound |= await self._rewind(rewinds)
                    if tp in rewound:
                        continue  # fetched before the seek: delivered again from there on
                    offset = message.offset
                    previous = read_offset[tp]
                    if previous is not None and offset < previous:
                        continue  # already delivered (fetched again after a seek)
                    if previous and offset - previous > 1 and acks_enabled_for(message.topic):
                        # Offsets with no message (compaction, transaction markers) count
                        # as acknowledged, or the committed offset would stall there.
                        await self._add_gap(tp, previous + 1, offset)
                    if (lose_changelog_record and message.topic not in inline_topics
                            and self.app.in_recovery
                            and _recovery_highwater(self.app, tp) == offset):
                        lose_changelog_record = False
                        self._lost_changelog_record = True
                        log.critical("failpoint lose-changelog-record: dropped %s %d offset %d",
                                     tp.topic, tp.partition, offset)
                        read_offset[tp] = offset
                        continue
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                    if message.topic in inline_topics and not self.suspend_flow.is_set():
                        await self._deliver(callback(message))
                    else:  # changelogs (recovery) and rebalances: exactly Faust's way
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    read_offset[tp] = offset
                    # One loop turn per message, as Faust's wait_first gave: the agent takes
                    # each into its batch as it comes (yielding every 100 messages instead
                    # cost a third of the throughput bench/pipeline.py measures).
                    await asyncio.sleep(0)
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    def _filter_committable_offsets(self, tps: Iterable[Any]) -> dict[Any, int]:
        # See the module docstring (5).
        offsets: dict[Any, int] = super()._filter_committable_offsets(tps)
        commit_ceiling = hooks_of(self.app).commit_ceiling
        if commit_ceiling is None:
            return offsets
        capped = {}
        for tp, offset in offsets.items():
            ceiling = commit_ceiling(tp)
            if ceiling is not None:
                offset = min(offset, ceiling)
            if self._should_commit(tp, offset):
                capped[tp] = offset
        return capped

    async def _rewind(self, rewinds: dict[Any, int]) -> set[Any]:
        """Seek the partitions in ``rewinds`` (:attr:`TransportHooks.rewinds`) back (point 5),
        here in the fetch loop, so that the records already fetched after the hole are not
        delivered (their read offsets would otherwise overwrite the seek's)."""
        rewound = set()
        while rewinds:
            tp, offset = rewinds.popitem()
            if tp in self.assignment():
                await self.seek(tp, offset)
                rewound.add(tp)
        return rewound

    async def _commit_tps(self, tps: Iterable[Any], start_new_transaction: bool) -> bool:
        # Every commit path (periodic, on stop, on error) goes through here; the hook runs
        # the commit itself so it can keep the agent out until offsets are chosen.
        commit = super()._commit_tps
        before_commit = hooks_of(self.app).before_commit
        if before_commit is None:
            return bool(await commit(tps, start_new_transaction))
        return await before_commit(lambda: commit(tps, start_new_transaction))


def _recovery_highwater(app: Any, tp: Any) -> int | None:
    """The last offset the table recovery in progress needs of changelog partition ``tp``."""
    highwater: int | None = app.tables.recovery.active_highwaters.get(tp)
    return highwater


def _pace_fetches(fetcher: Any, interval_s: float) -> None:
    """See the module docstring (6). aiokafka's fetch loop looks the request coroutine up on
    the fetcher for every request, so an instance attribute replaces it from the next one."""
    send = fetcher._proc_fetch_request
    last: dict[int, float] = {}
    loop = asyncio.get_running_loop()

    async def paced(assignment: Any, node_id: int, request: Any) -> Any:
        wait = last.pop(node_id, -interval_s) + interval_s - loop.time()
        if wait > 0:
            try:
                await asyncio.sleep(wait)
            except asyncio.CancelledError:
                # The fetcher closing: it cancels and then awaits its request tasks,
                # expecting them to return False, as aiokafka's own does; raising here
                # crashed the consumer thread and the worker never exited.
                return False
        sent_at = loop.time()
        result = await send(assignment, node_id, request)
        if _backlog(assignment, request) <= FETCH_BACKLOG_RECORDS:
            last[node_id] = sent_at
        return result

    fetcher._proc_fetch_request = paced


def _backlog(assignment: Any, request: Any) -> int:
    """The most records any partition of a fetch request had waiting beyond the offset it
    was fetched from, by the high watermarks the response brought (0 if unknown)."""
    most = 0
    for topic, partitions in request.topics:
        for partition, offset, *_ in partitions:
            state = assignment.state_value(aiokafka.TopicPartition(topic, partition))
            highwater = getattr(state, "highwater", None)
            if highwater is not None:
                most = max(most, highwater - offset)
    return most


async def _resume(delivery: Coroutine[Any, Any, Any], waiting_on: Any) -> Any:
    """Drive a delivery coroutine that was started inline and had to wait, as a task would:
    wait for the future it yielded, resume it, repeat."""
    while True:
        try:
            if waiting_on is None:  # a bare yield (asyncio.sleep(0)): let the loop run once
                await asyncio.sleep(0)
            else:
                # The flag the coroutine's await set for its task; awaiting the future
                # again, as a task would, needs it cleared (asyncio's Task does the same).
                waiting_on._asyncio_future_blocking = False
                await waiting_on
        except asyncio.CancelledError:
            if waiting_on is None or not waiting_on.cancelled():
                delivery.close()
                raise
            # Our cancellation cancelled the future it waits on: it unwinds on resuming.
        except Exception:  # the coroutine receives the future's error on resuming
            pass
        try:
            waiting_on = delivery.send(None)
        except StopIteration as finished:
            return finished.value


class _Producer(faust_aiokafka.Producer):
    """Faust's producer, always idempotent (8)."""

    def _settings_extra(self) -> Any:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class Transport(faust_aiokafka.Transport):
    """``kafka://`` transport whose consumer honours the app's :class:`TransportHooks` and
    whose producer is idempotent."""

    Consumer = _Consumer
    Producer = _Producer
