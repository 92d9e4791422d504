"""What the worker's commit hooks (streams/kafka.py, points 2 and 5) buy on a real Kafka,
shown by a worker killed with SIGKILL (issue 15 point 3: each override kept on real Kafka has
a test here that fails without it):

- the commit ceiling (5): no offset is committed past a session change not yet in the table,
  so a worker killed while sessions are changing faster than they are checkpointed loses
  nothing;
- the step before every commit (2): the reports watermark written with every commit, so the
  worker taking the partitions over re-reads only the reports published since the last
  commit, not the whole reports topic.

And where a partition taken over starts (streams/start_offsets.py): the group's committed
offset, read from the broker, so a first record delivered after it is known to follow a
hole."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic, RecordsToDelete
from aiokafka.structs import OffsetAndMetadata
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

from streams.start_offsets import StartOffsets

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

_READ = re.compile(r"partition \d+: read (\d+) report record\(s\) from offset (\d+) to (\d+)")


def test_a_worker_killed_while_sessions_change_faster_than_checkpoints_loses_nothing(
        kafka_cluster: Any, tmp_path: Path) -> None:
    """48 sessions at once, about 12 per partition: each partition's sessions are written in
    turn, one per checkpoint round (0.25 s), so a session's changes wait about 3 s for their
    write while offsets are committed every 2 s. The worker is killed mid-feed; a commit that
    passed an unwritten change would leave its events neither in the restored state nor in
    the replay, and the session's report would differ."""
    cluster: Cluster = kafka_cluster(1)
    app_id = "t-commit-ceiling"
    fresh_topics(cluster, app_id)
    lines = simulate_lines("--sessions", "48", "--minutes", "1", "--seed", "71", "--style",
                           "mixed", "--jitter-ms", "2000", "--duplicate-rate", "0.05",
                           "--session-stagger-ms", "20000")
    expected = offline_reports(lines)
    chunks = [lines[i : i + 200] for i in range(0, len(lines), 200)]

    async def scenario() -> None:
        first = Worker(cluster.bootstrap, tmp_path / "first.log", "--app-id", app_id,
                       "--data-dir", str(tmp_path / "first"), embedded=False)
        second = None
        try:
            async with Producer(cluster.bootstrap) as producer, \
                    Outputs(cluster.bootstrap) as outputs:
                await wait_until(lambda: first.assigned() == PARTITIONS, 90, "assignment",
                                 [first])
                cut = len(chunks) * 3 // 5
                for chunk in chunks[:cut]:
                    await producer.send(chunk)
                    await asyncio.sleep(0.1)
                await wait_until(lambda: first.metrics().get("rapport_events_consumed_total", 0)
                                 > 0, 30, "events consumed", [first])
                first.kill()  # mid-feed: sessions changed since their last write
                for chunk in chunks[cut:]:
                    await producer.send(chunk)
                second = Worker(cluster.bootstrap, tmp_path / "second.log", "--app-id", app_id,
                                "--data-dir", str(tmp_path / "second"), embedded=False)
                await outputs.until(lambda o: o.reported_sessions() >= set(expected), 180,
                                    "every report after the crash", [second])
                await asyncio.sleep(3)  # a repeated report would show up by now
                await outputs.poll()
                assert_reports_match(outputs, expected, [first, second])
                assert not outputs.dead_letters
        finally:
            first.stop()
            if second is not None:
                second.stop()

    asyncio.run(scenario())


def test_a_take_over_rereads_only_the_reports_since_the_last_commit(
        kafka_cluster: Any, tmp_path: Path) -> None:
    """Reports published, then a few quiet seconds (commits meanwhile), then SIGKILL: the
    replacement reconciles its sessions with fewer report records than the topic holds
    (docs/streaming.md, "Delivery guarantees": the read covers what was published since the
    previous owner's last commit) and still publishes every report once."""
    cluster: Cluster = kafka_cluster(1)
    app_id = "t-report-watermark"
    fresh_topics(cluster, app_id)
    lines = simulate_lines("--sessions", "12", "--minutes", "1", "--seed", "81", "--style",
                           "mixed", "--jitter-ms", "2000", "--duplicate-rate", "0.05",
                           "--session-stagger-ms", "60000")
    expected = offline_reports(lines)
    chunks = [lines[i : i + 400] for i in range(0, len(lines), 400)]

    async def scenario() -> None:
        first = Worker(cluster.bootstrap, tmp_path / "first.log", "--app-id", app_id,
                       "--data-dir", str(tmp_path / "first"), embedded=False)
        second = None
        try:
            async with Producer(cluster.bootstrap) as producer, \
                    Outputs(cluster.bootstrap) as outputs:
                await wait_until(lambda: first.assigned() == PARTITIONS, 90, "assignment",
                                 [first])
                half = len(chunks) // 2
                for chunk in chunks[:half]:
                    await producer.send(chunk)
                    await asyncio.sleep(0.2)
                await outputs.until(lambda o: len(o.reports) >= 2, 90, "first reports",
                                    [first])
                await asyncio.sleep(5)  # two commit intervals: the watermarks are written
                await outputs.poll()
                published = len(outputs.reports)
                first.kill()
                for chunk in chunks[half:]:
                    await producer.send(chunk)
                second = Worker(cluster.bootstrap, tmp_path / "second.log", "--app-id", app_id,
                                "--data-dir", str(tmp_path / "second"), embedded=False)
                await outputs.until(lambda o: o.reported_sessions() >= set(expected), 150,
                                    "every report after the crash", [second])
                await asyncio.sleep(3)
                await outputs.poll()
                assert_reports_match(outputs, expected, [first, second])
                reads = [int(n) for n, _, _ in _READ.findall(second.log.read_text())]
                assert sum(reads) < published, (
                    f"the replacement re-read {sum(reads)} report record(s) of the "
                    f"{published} published before the kill: {reads}")
        finally:
            first.stop()
            if second is not None:
                second.stop()

    asyncio.run(scenario())


def test_a_partition_taken_over_starts_at_the_groups_committed_offset(
        kafka_cluster: Any) -> None:
    """Partition 0: the group committed 7. Partition 1: no commit, and records before 3
    deleted (retention): the group's consumer would start at 3. Partition 2: empty, no
    commit: 0. Another group's commit changes nothing."""
    cluster: Cluster = kafka_cluster(1)
    topic, group = "t-start-offsets", "t-start-offsets-group"

    async def scenario() -> dict[int, int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=cluster.bootstrap)
        await admin.start()
        try:
            # The cluster is the test session's own (fresh data directory): a new topic.
            await admin.create_topics([NewTopic(topic, 3, 1)])
            producer = AIOKafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all")
            await producer.start()
            try:
                for partition in (0, 1):
                    for n in range(10):
                        await producer.send_and_wait(topic, b"%d" % n, partition=partition)
            finally:
                await producer.stop()
            await admin.delete_records({TopicPartition(topic, 1): RecordsToDelete(3)})
            for committer, offset in ((group, 7), (group + "-other", 9)):
                consumer = AIOKafkaConsumer(bootstrap_servers=cluster.bootstrap,
                                            group_id=committer, enable_auto_commit=False)
                await consumer.start()
                try:
                    tp = TopicPartition(topic, 0)
                    consumer.assign([tp])
                    await consumer.commit({tp: OffsetAndMetadata(offset, "")})
                finally:
                    await consumer.stop()
        finally:
            await admin.close()
        starts = StartOffsets(cluster.bootstrap, group, topic)
        try:
            return await starts.read([0, 1, 2])
        finally:
            await starts.close()

    assert asyncio.run(scenario()) == {0: 7, 1: 3, 2: 0}


def test_start_offsets_a_broker_does_not_answer_are_unknown_not_fatal(
        caplog: pytest.LogCaptureFixture) -> None:
    """Nothing listens on the port: after its tries the lookup gives up, saying so, and the
    worker goes on (each partition then starts at its first record delivered)."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    starts = StartOffsets(f"127.0.0.1:{port}", "g", "t", timeout_s=2)
    started = time.monotonic()
    assert asyncio.run(starts.read([0, 1])) == {}
    assert time.monotonic() - started < 3 * 2 + 2
    assert "committed offsets of t unreadable" in caplog.text
