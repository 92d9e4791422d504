"""A broker of a 3-broker Kafka cluster killed with SIGKILL mid-run: topics replicated 3
times with min.insync.replicas 2, the feed produced with acks=all and idempotence. The
worker rides over the leader changes: no report lost, none changed, none twice."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from harness import (
    PARTITIONS,
    TOPICS,
    Outputs,
    Producer,
    Worker,
    assert_reports_match,
    offline_reports,
    simulate_lines,
    wait_until,
)
from kafkakit import Cluster, fresh_topics

from services.kafka_admin import admin_client

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

APP_ID = "t-broker-kill"


def busiest_leader(cluster: Cluster) -> int:
    """The broker leading most partitions of the events and reports topics."""
    metadata = admin_client(cluster.bootstrap).list_topics(timeout=10)
    leaders = Counter(partition.leader for name in (TOPICS.events, TOPICS.reports)
                      for partition in metadata.topics[name].partitions.values())
    return leaders.most_common(1)[0][0]


def test_a_killed_broker_loses_no_report_and_repeats_none(kafka_cluster: Any,
                                                          tmp_path: Path) -> None:
    cluster: Cluster = kafka_cluster(3)
    fresh_topics(cluster, APP_ID)
    lines = simulate_lines("--sessions", "12", "--minutes", "1", "--seed", "31", "--style",
                           "mixed", "--jitter-ms", "2000", "--duplicate-rate", "0.05",
                           "--session-stagger-ms", "180000")
    expected = offline_reports(lines)
    chunks = [lines[i : i + 400] for i in range(0, len(lines), 400)]

    async def scenario() -> None:
        worker = Worker(cluster.bootstrap, tmp_path / "worker.log", "--app-id", APP_ID,
                        embedded=False)
        try:
            async with Producer(cluster.bootstrap, idempotent=True) as producer, \
                    Outputs(cluster.bootstrap) as outputs:
                await wait_until(lambda: worker.assigned() == PARTITIONS, 90, "assignment",
                                 [worker])
                half = len(chunks) // 2
                for chunk in chunks[:half]:
                    await producer.send(chunk)
                    await asyncio.sleep(0.2)
                await outputs.until(lambda o: len(o.reports) >= 2, 90, "first reports",
                                    [worker])
                victim = busiest_leader(cluster)
                os.kill(cluster.brokers[victim][0], signal.SIGKILL)
                for chunk in chunks[half:]:
                    await producer.send(chunk)
                    await asyncio.sleep(0.2)
                # Leaders move once the controller fences the dead broker (its session
                # timeout, 9 s); the worker's fetches and sends retry meanwhile.
                await outputs.until(lambda o: o.reported_sessions() >= set(expected), 180,
                                    "every report after the broker died", [worker])
                await asyncio.sleep(3)  # a repeated report would show up by now
                await outputs.poll()
                assert_reports_match(outputs, expected)
                assert not outputs.dead_letters
                assert worker.process.poll() is None, "the worker died with the broker"
        finally:
            worker.stop()

    asyncio.run(scenario())
