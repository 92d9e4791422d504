"""An unreadable checkpoint on a real Kafka (issue 15 point 4; docs/streaming.md, "Delivery
guarantees"): a session's entry in the changelog is corrupted while no worker runs, and the
worker taking the partitions over, with the RocksDB store of production, dead-letters it,
closes that session as unreportable, counts it, rejects its later events, and reports every
other session as ``rapport analyze`` does.

It also shows two private touch points of ``streams/app.py`` on real Kafka (docs/streaming.md,
"Faust and aiokafka overrides", 9 and 10): which changelog partition an unreadable entry came
from is read from the store's internals (``stored_partition``; without it the entry is only
logged and its session goes on with no state), and every table write sets Faust's current
event (without it no report comes out at all). The memory store's side of ``stored_partition``
is covered on the embedded broker (tests/integration/test_pipeline.py)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from harness import (
    PARTITIONS,
    Outputs,
    Producer,
    Worker,
    assert_reports_match,
    offline_reports,
    simulate_lines,
    wait_until,
)
from kafkakit import Cluster, fresh_topics

from models.stream_session import StreamSession, load_state
from models.topics import changelog_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def _changelog(bootstrap: str, app_id: str) -> dict[bytes, tuple[int, bytes | None]]:
    """The sessions table as its changelog holds it: per key, partition and newest value."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                max_partition_fetch_bytes=16 * 1024 * 1024)
    await consumer.start()
    try:
        tps = [TopicPartition(changelog_topic(app_id), p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        table: dict[bytes, tuple[int, bytes | None]] = {}
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for tp, messages in (await consumer.getmany(timeout_ms=200)).items():
                for message in messages:
                    table[message.key] = (tp.partition, message.value)
        return table
    finally:
        await consumer.stop()


def test_an_unreadable_checkpoint_is_dead_lettered_and_the_worker_keeps_going(
        kafka_cluster: Any, tmp_path: Path) -> None:
    cluster: Cluster = kafka_cluster(1)
    app_id = "t-unreadable"
    fresh_topics(cluster, app_id)
    lines = simulate_lines("--sessions", "6", "--minutes", "1", "--seed", "8",
                           "--style", "mixed", "--session-stagger-ms", "5000")
    expected = offline_reports(lines)
    half = len(lines) // 2
    extra = ("--app-id", app_id, "--store", "rocksdb://", "--checkpoint-interval-s", "0.5")

    async def scenario() -> None:
        first = Worker(cluster.bootstrap, tmp_path / "first.log", *extra, "--data-dir",
                       str(tmp_path / "first"), embedded=False)
        second = None
        try:
            async with Producer(cluster.bootstrap) as producer, \
                    Outputs(cluster.bootstrap) as outputs:
                await wait_until(lambda: first.assigned() == PARTITIONS, 90, "assignment",
                                 [first])
                await producer.send(lines[:half])
                await wait_until(lambda: first.metrics().get(
                    "rapport_checkpoints_total", 0) >= len(expected), 90, "checkpoints",
                    [first])
                first.kill()
                await outputs.poll()
                table = await _changelog(cluster.bootstrap, app_id)
                victim, (partition, value) = next(
                    (key, entry) for key, entry in sorted(table.items())
                    if entry[1] is not None and not key.startswith(b"\0")
                    and isinstance(load_state(entry[1]), StreamSession)
                    and key.decode().split(" ")[1] not in outputs.reported_sessions())
                assert value is not None
                corrupt = bytearray(value)
                corrupt[len(corrupt) // 2] ^= 0xFF
                async with AIOKafkaProducer(bootstrap_servers=cluster.bootstrap,
                                            acks="all") as raw:
                    await raw.send_and_wait(changelog_topic(app_id), bytes(corrupt),
                                            key=victim, partition=partition)
                await producer.send(lines[half:])
                # Its own, empty state directory: the RocksDB store is rebuilt from the
                # changelog, the corrupted entry included.
                second = Worker(cluster.bootstrap, tmp_path / "second.log", *extra,
                                "--data-dir", str(tmp_path / "second"), embedded=False)
                victim_id = victim.decode().split(" ")[1]  # keys: "clinic_id session_id"
                others = set(expected) - {victim_id}
                await outputs.until(lambda o: o.reported_sessions() >= others, 150,
                                    "every other report", [second])
                await asyncio.sleep(3)  # the victim's later events reach the dead letters
                await outputs.poll()
                del expected[victim_id]
                assert_reports_match(outputs, expected)
                dead = [d for d in outputs.dead_letters if d["session_id"] == victim_id]
                assert dead and len(dead) == len(outputs.dead_letters)
                assert (dead[0]["reason"], dead[0]["field"]) == ("unreportable", "checkpoint")
                assert base64.b64decode(dead[0]["raw"]) == bytes(corrupt)
                assert dead[0]["source"]["partition"] == partition
                assert {d["reason"] for d in dead[1:]} <= {"session_state"}
                metrics = second.metrics()
                assert metrics["rapport_checkpoints_unreadable_total"] == 1
                assert metrics['rapport_sessions_closed_total{ended_by="unreportable"}'] == 1
        finally:
            first.stop()
            if second is not None:
                second.stop()

    asyncio.run(scenario())
