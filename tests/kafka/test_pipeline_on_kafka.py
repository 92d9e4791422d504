"""The streaming pipeline on a 1-broker real Kafka: reports equal to ``rapport analyze``
(duplicates dropped, malformed lines on the dead-letter topic), a worker killed with
SIGKILL replaced without a changed or repeated report, and ``rapport run --broker``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from harness import (
    PARTITIONS,
    ROOT,
    Outputs,
    Producer,
    Worker,
    assert_reports_match,
    check_dead_letters,
    malformed,
    simulate_lines,
    wait_until,
)
from kafkakit import Cluster, fresh_topics

from services.store.pseudonyms import Pseudonymizer

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def analyze(events: Path) -> dict[str, dict[str, Any]]:
    """``rapport analyze --json`` of the file, by session."""
    run = subprocess.run([sys.executable, "-m", "services.cli", "analyze", "--json",
                          str(events)], cwd=ROOT, capture_output=True, check=True)
    return {r["session_id"]: r for r in map(orjson.loads, run.stdout.splitlines())}


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_reports_equal_rapport_analyze_and_malformed_lines_go_to_the_dlq(
        kafka_cluster: Any, tmp_path: Path) -> None:
    """12 sessions, jittered, 5 % duplicated, three malformed lines in the middle. (A line
    over the workers' 1 MiB limit cannot reach a real topic: Kafka's default
    max.message.bytes refuses it at the producer, so this tier leaves it to
    tests/integration.)"""
    cluster: Cluster = kafka_cluster(1)
    fresh_topics(cluster, "t-pipeline")
    lines = simulate_lines("--sessions", "12", "--minutes", "1", "--seed", "7", "--style",
                           "mixed", "--jitter-ms", "2000", "--duplicate-rate", "0.05",
                           "--session-stagger-ms", "60000")
    bad = malformed(0)[:3]
    third = len(lines) // 3
    events = lines[:third] + bad + lines[third:]
    expected = analyze(write(tmp_path / "events.jsonl", events))
    assert len(expected) == 12

    async def scenario() -> None:
        worker = Worker(cluster.bootstrap, tmp_path / "worker.log", "--app-id", "t-pipeline",
                        embedded=False)
        try:
            async with Producer(cluster.bootstrap) as producer, \
                    Outputs(cluster.bootstrap) as outputs:
                await wait_until(lambda: worker.assigned() == PARTITIONS, 90, "assignment",
                                 [worker])
                await producer.send(events)
                await outputs.until(lambda o: o.reported_sessions() >= set(expected), 120,
                                    "every report", [worker])
                await asyncio.sleep(2)  # a repeated report would show up by now
                await outputs.poll()
                assert_reports_match(outputs, expected)
                check_dead_letters(outputs.dead_letters, bad)
                metrics = worker.metrics()
                assert metrics["rapport_events_consumed_total"] == len(events)
        finally:
            worker.stop()

    asyncio.run(scenario())


# RocksDB, production's store, here; the memory store (``rapport run``'s) runs the same
# scenario on the embedded broker (tests/integration/test_pipeline.py). The memory store on
# real Kafka was a third run of it (about 19 s of the suite's 20 minutes) that composed those
# two: the store's restore is the same code on either broker.
@pytest.mark.parametrize("store", ["rocksdb://"])
def test_a_killed_worker_is_replaced_without_changing_or_repeating_a_report(
        kafka_cluster: Any, tmp_path: Path, store: str) -> None:
    """SIGKILL midway: sessions open, state and offsets not all committed; the replacement
    (its own, empty state directory) restores the sessions from the changelog on the
    broker and finishes them."""
    cluster: Cluster = kafka_cluster(1)
    app_id = f"t-worker-kill-{store.removesuffix('://')}"
    fresh_topics(cluster, app_id)
    lines = simulate_lines("--sessions", "12", "--minutes", "1", "--seed", "21", "--style",
                           "mixed", "--jitter-ms", "2000", "--duplicate-rate", "0.05",
                           "--session-stagger-ms", "180000")
    expected = analyze(write(tmp_path / "events.jsonl", lines))
    chunks = [lines[i : i + 400] for i in range(0, len(lines), 400)]

    async def scenario() -> None:
        first = Worker(cluster.bootstrap, tmp_path / "first.log", "--app-id", app_id,
                       "--store", store, "--data-dir",
                       str(tmp_path / "first"), embedded=False)
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
                first.kill()
                for chunk in chunks[half:]:
                    await producer.send(chunk)
                second = Worker(cluster.bootstrap, tmp_path / "second.log", "--app-id", app_id,
                                "--store", store, "--data-dir",
                                str(tmp_path / "second"), embedded=False)
                # The killed member holds its partitions until its session times out (10 s).
                await outputs.until(lambda o: o.reported_sessions() >= set(expected), 150,
                                    "every report after the crash", [second])
                await asyncio.sleep(3)  # a repeated report would show up by now
                await outputs.poll()
                assert_reports_match(outputs, expected)
                assert not outputs.dead_letters
        finally:
            first.stop()
            if second is not None:
                second.stop()

    asyncio.run(scenario())


def test_rapport_run_on_a_real_cluster_gives_rapport_analyze_reports(
        kafka_cluster: Any, tmp_path: Path) -> None:
    """``rapport run --broker`` with the bootstrap list ``rapport kafka`` printed: no embedded
    broker, the cluster's topics, the default worker group."""
    cluster: Cluster = kafka_cluster(1)
    fresh_topics(cluster, "rapport")
    events = write(tmp_path / "events.jsonl", simulate_lines(
        "--sessions", "20", "--minutes", "2", "--seed", "9", "--style", "mixed",
        "--jitter-ms", "3000", "--duplicate-rate", "0.05", "--session-stagger-ms", "60000"))
    out = tmp_path / "reports.jsonl"
    # rapport run pseudonymizes participant ids as they enter (issue 16 finding 5): its
    # reports equal the analysis of the events as it feeds them, with the key it is given.
    key = "kafka-test-pseudonym-key"
    hide = Pseudonymizer(key.encode())
    hidden = write(tmp_path / "hidden.jsonl", [orjson.dumps(hide.apply(orjson.loads(line)))
                                               for line in events.read_bytes().splitlines()])
    run = subprocess.run(
        [sys.executable, "-m", "services.cli", "run", "--broker", cluster.bootstrap,
         "--events", str(events), "--reports", str(out), "--exit-when-done",
         "--end-grace-ms", "1000", "--partitions", str(PARTITIONS)],
        cwd=ROOT, capture_output=True, timeout=300,
        env={**os.environ, "RAPPORT_PSEUDONYM_KEY": key,
             "RAPPORT_DATA_DIR": str(tmp_path / "data")})
    stderr = run.stderr.decode(errors="replace")
    assert run.returncode == 0, stderr[-3000:]
    assert "embedded broker" not in stderr
    assert f"Kafka at {cluster.bootstrap}" in stderr
    assert "20 closed" in stderr
    got = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(got) == 20
    assert {r["session_id"]: r for r in got} == analyze(hidden)


def test_rapport_run_refuses_topics_with_another_partition_count(
        kafka_cluster: Any, tmp_path: Path) -> None:
    """Every topic is keyed by session and co-partitioned: a run asking for 8 partitions on
    topics of 4 would split sessions from their state, so it stops before starting workers."""
    cluster: Cluster = kafka_cluster(1)
    events = write(tmp_path / "events.jsonl", simulate_lines("--sessions", "1", "--minutes",
                                                             "1", "--seed", "1"))
    run = subprocess.run(
        [sys.executable, "-m", "services.cli", "run", "--broker", f"kafka://{cluster.bootstrap}",
         "--events", str(events), "--exit-when-done", "--partitions", "8"],
        cwd=ROOT, capture_output=True, timeout=120)
    assert run.returncode == 1
    assert b"rapport.events has 4 partition(s), not 8" in run.stderr
    assert b"worker" not in run.stderr
