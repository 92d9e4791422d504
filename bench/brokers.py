"""The brokers bench/pipeline.py measures on, and what differs between them.

``embedded``: librdkafka's mock cluster in the bench's own process (services/broker.py), the
zero-setup broker of ``make run``. ``kafka``: a real 1-broker Apache Kafka (KRaft) started by
the project's launcher (services/kafka_cluster.py, the code behind ``rapport kafka``) from the
jars of ``make kafka`` (``RAPPORT_KAFKA_CLASSPATH`` names another classpath file), with the
topics created as ``rapport kafka --brokers 1`` creates them (replication 1,
``min.insync.replicas`` 1, the sessions changelog compacted).

Every setting below that exists only for a quirk of the mock cluster applies only to it; on
real Kafka the clients and the worker keep their defaults for a real broker.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from models.topics import TopicSpec
from services.broker import EmbeddedBroker
from services.kafka_admin import (
    TopicPlan,
    ensure_topics,
    rapport_topics,
    wait_for_brokers,
    wait_for_topics,
)
from services.kafka_cluster import KafkaCluster

BrokerKind = Literal["embedded", "kafka"]
START_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class BrokerProfile:
    """Client and worker settings for one kind of broker."""

    kind: BrokerKind
    label: str
    # `rapport worker` flags. The mock cluster holds every fetch for its whole max wait and
    # answers with one producer batch per partition, hence a 10 ms wait and fetches at least
    # 20 ms apart, and its overrides (`--broker-kind embedded`: what `rapport worker` picks by
    # itself on the embedded broker of `rapport run`); on real Kafka the worker's defaults
    # (Faust's fetch wait, answered as soon as data arrives; no pacing; docs/streaming.md,
    # "Faust and aiokafka overrides").
    worker_args: tuple[str, ...]
    # The naive agent's fetch wait: the same as Rapport's worker on that broker.
    agent_fetch_max_wait_ms: int
    # Fetch wait of the bench's own consumers (ceiling, latency reader): None keeps
    # aiokafka's default, which a real broker cuts short when data arrives.
    ceiling_fetch_max_wait_ms: int | None
    latency_fetch_max_wait_ms: int | None
    # The real-time producer's linger. The mock cluster answers a fetch with at most one
    # producer batch per partition ("FIXME: Multiple messageSets?"), so a producer that sends
    # a batch every 5 ms makes the worker fetch ~200 times a second per partition, a limit of
    # the test broker, not of the worker: 50 ms there. Real Kafka returns whatever
    # accumulated, so 5 ms. Records are stamped when sent to the producer, so the linger
    # counts in the measured latency.
    realtime_linger_ms: int


EMBEDDED = BrokerProfile(
    kind="embedded", label="embedded broker (librdkafka mock cluster, in the bench's process)",
    worker_args=("--broker-kind", "embedded", "--fetch-max-wait-ms", "10",
                 "--fetch-min-interval-ms", "20"),
    agent_fetch_max_wait_ms=10, ceiling_fetch_max_wait_ms=10, latency_fetch_max_wait_ms=5,
    realtime_linger_ms=50)
KAFKA = BrokerProfile(
    kind="kafka", label="Apache Kafka, 1 broker (KRaft, its own JVM process)",
    worker_args=(), agent_fetch_max_wait_ms=500, ceiling_fetch_max_wait_ms=None,
    latency_fetch_max_wait_ms=None, realtime_linger_ms=5)
PROFILES: dict[BrokerKind, BrokerProfile] = {"embedded": EMBEDDED, "kafka": KAFKA}


@contextmanager
def running_broker(profile: BrokerProfile, partitions: int,
                   extra: Sequence[TopicSpec] = ()) -> Iterator[str]:
    """A fresh, empty broker of ``profile``'s kind with Rapport's topics (default app id) and
    ``extra`` topics, all with ``partitions``; yields its bootstrap. Stopped on the way out,
    whatever the reason (an error, Ctrl-C, or SIGTERM made into SystemExit by the caller)."""
    if profile.kind == "embedded":
        with EmbeddedBroker() as broker:
            plans = rapport_topics(partitions)
            broker.create_topics([*(plan.spec for plan in plans), *extra])
            yield broker.bootstrap
        return
    data = Path(tempfile.mkdtemp(prefix="bench-kafka-"))
    cluster = KafkaCluster(1, data)
    try:
        bootstrap = cluster.start()
        wait_for_brokers(bootstrap, 1, START_TIMEOUT_S, cluster.exited)
        plans = [*rapport_topics(partitions, 1, 1),
                 *(TopicPlan(spec, 1, {"min.insync.replicas": "1"}) for spec in extra)]
        ensure_topics(bootstrap, plans)
        wait_for_topics(bootstrap, {p.spec.name: p.spec.partitions for p in plans},
                        START_TIMEOUT_S)
        asyncio.run(leaders_serving(bootstrap, plans))
        yield bootstrap
    finally:
        cluster.stop()
        shutil.rmtree(data, ignore_errors=True)


async def leaders_serving(bootstrap: str, plans: Sequence[TopicPlan]) -> None:
    """Until every partition's leader answers a ListOffsets request. The metadata names a
    new partition's leader a moment before that broker serves it (NotLeaderForPartition,
    retried by the clients after a back-off), and that moment must not count in the first
    figure measured."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                request_timeout_ms=int(START_TIMEOUT_S * 1000))
    await consumer.start()
    try:
        await consumer.end_offsets([TopicPartition(plan.spec.name, partition)
                                    for plan in plans
                                    for partition in range(plan.spec.partitions)])
    finally:
        await consumer.stop()
