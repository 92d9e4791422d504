"""Operations on a real Kafka (issue 15 point 2): workers joining and leaving a group under
load, the only broker of a cluster killed and started again, and the whole path from the
HTTP ingest through the workers to the report store and its API."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
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
    free_port,
    offline_reports,
    simulate_lines,
    wait_until,
)
from kafkakit import Cluster, alive, fresh_topics, requirements, start, stopped

from services.kafka_admin import ensure_topics, rapport_topics
from services.store.pseudonyms import Pseudonymizer, load_key

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def load(seed: str, sessions: int = 12) -> list[bytes]:
    return simulate_lines("--sessions", str(sessions), "--minutes", "1", "--seed", seed,
                          "--style", "mixed", "--jitter-ms", "2000", "--duplicate-rate",
                          "0.05", "--session-stagger-ms", "180000")


def test_three_workers_join_and_one_leaves_under_load(kafka_cluster: Any,
                                                      tmp_path: Path) -> None:
    """A second and a third worker join while events flow, then one leaves (SIGTERM): each
    rebalance hands sessions over through the changelog; no report lost, changed or twice."""
    cluster: Cluster = kafka_cluster(1)
    app_id = "t-rebalance"
    fresh_topics(cluster, app_id)
    lines = load("41", sessions=18)
    expected = offline_reports(lines)
    chunks = [lines[i : i + 300] for i in range(0, len(lines), 300)]
    thirds = [chunks[k * len(chunks) // 3 : (k + 1) * len(chunks) // 3] for k in range(3)]

    def worker(name: str) -> Worker:
        return Worker(cluster.bootstrap, tmp_path / f"{name}.log", "--app-id", app_id,
                      "--data-dir", str(tmp_path / name), embedded=False)

    async def scenario() -> None:
        workers = [worker("w1")]
        try:
            async with Producer(cluster.bootstrap, idempotent=True) as producer, \
                    Outputs(cluster.bootstrap) as outputs:
                await wait_until(lambda: workers[0].assigned() == PARTITIONS, 90,
                                 "assignment", workers)
                for k, third in enumerate(thirds):
                    for chunk in third:
                        await producer.send(chunk)
                        await asyncio.sleep(0.1)
                    if k < 2:  # a worker joins mid-load; the group shares the partitions
                        joining = worker(f"w{k + 2}")
                        workers.append(joining)
                        # Faust's assignor decides who owns what (with 4 partitions a
                        # member may get standbys only); the group has rebalanced once the
                        # newcomer took part in an assignment and every partition is owned.
                        await wait_until(
                            lambda w=joining: "partitions assigned:" in w.log.read_text()
                            and sum(x.assigned() for x in workers) == PARTITIONS
                            and sum(x.assigned() > 0 for x in workers) >= 2,
                            120, f"{len(workers)} workers sharing the partitions", workers)
                leaving = workers.pop(1)
                leaving.stop()  # SIGTERM: a clean leave, its partitions handed over at once
                await wait_until(lambda: sum(w.assigned() for w in workers) == PARTITIONS,
                                 90, "the two remaining workers owning everything", workers)
                await outputs.until(lambda o: o.reported_sessions() >= set(expected), 180,
                                    "every report after the rebalances", workers)
                await asyncio.sleep(3)  # a repeated report would show up by now
                await outputs.poll()
                assert_reports_match(outputs, expected, workers)
                assert not outputs.dead_letters
        finally:
            for running in workers:
                running.stop()

    asyncio.run(scenario())


def _relaunch(pid: int) -> subprocess.Popen[bytes]:
    """Start a killed broker again, as it was started (command line, directory)."""
    command = [part.decode() for part in
               Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")]
    directory = os.readlink(f"/proc/{pid}/cwd")
    # The node's own directory (where rapport kafka keeps its server.log), for its output.
    logs = next(Path(part.split("=", 1)[1]) for part in command
                if part.startswith("-Dkafka.logs.dir="))
    os.kill(pid, signal.SIGKILL)
    while alive(pid):
        time.sleep(0.05)
    log = open(logs / "restarted.log", "ab")  # noqa: SIM115  # the broker's, kept open
    return subprocess.Popen(command, cwd=directory, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)


@pytest.fixture
def own_cluster(tmp_path: Path) -> Any:
    """A 1-broker cluster of this test's own (the shared ones must keep their brokers)."""
    missing = requirements()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"tests/kafka need Java and the Kafka jars in CI: {missing}")
        pytest.skip(f"no real Kafka here: {missing}")
    cluster = start(1, tmp_path / "own")
    yield cluster
    stopped(cluster)


def test_the_only_broker_killed_and_restarted_loses_and_repeats_nothing(
        own_cluster: Cluster, tmp_path: Path) -> None:
    """The whole cluster down for seconds (SIGKILL, no controlled shutdown), then back on
    the same data: the worker and the idempotent producer retry meanwhile, and the worker
    resumes from its committed offsets and checkpoints."""
    cluster = own_cluster
    app_id = "t-broker-restart"
    ensure_topics(cluster.bootstrap, rapport_topics(PARTITIONS, 1, 1, app_id=app_id))
    lines = load("51")
    expected = offline_reports(lines)
    chunks = [lines[i : i + 400] for i in range(0, len(lines), 400)]
    restarted: subprocess.Popen[bytes] | None = None

    async def scenario() -> None:
        nonlocal restarted
        worker = Worker(cluster.bootstrap, tmp_path / "worker.log", "--app-id", app_id,
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
                (broker_pid, _), = cluster.brokers.values()
                restarted = await asyncio.to_thread(_relaunch, broker_pid)
                await asyncio.sleep(5)  # down for a while; clients keep retrying
                for chunk in chunks[half:]:
                    await producer.send(chunk)
                    await asyncio.sleep(0.2)
                await outputs.until(lambda o: o.reported_sessions() >= set(expected), 240,
                                    "every report after the restart", [worker])
                await asyncio.sleep(3)
                await outputs.poll()
                assert_reports_match(outputs, expected)
                assert not outputs.dead_letters
                assert worker.process.poll() is None, "the worker died with the broker"
        finally:
            worker.stop()

    try:
        asyncio.run(scenario())
    finally:
        if restarted is not None:
            restarted.terminate()
            restarted.wait(60)


def _http(port: int, method: str, path: str, token: str, body: bytes | None = None
          ) -> tuple[int, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body,
                                     method=method,
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/x-ndjson"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, orjson.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def test_ingest_to_workers_to_report_store_on_real_kafka(kafka_cluster: Any,
                                                         tmp_path: Path) -> None:
    """`rapport run --broker … --port`: events posted over HTTP with a clinic's ingest token
    are published by the ingest, turned into reports by a worker and stored; the clinic's
    report API then serves, for every session, what `rapport analyze` computes."""
    cluster: Cluster = kafka_cluster(1)
    fresh_topics(cluster, "rapport")
    clinic = "clinic-e2e"
    lines = [re.sub(rb'"clinic_id": ?"[^"]*"', f'"clinic_id": "{clinic}"'.encode(), line)
             for line in load("61", sessions=6)]
    expected = offline_reports(lines)
    port = free_port()
    env = {**os.environ, "RAPPORT_DATA_DIR": str(tmp_path / "data")}
    env.pop("RAPPORT_DB_URL", None)
    log_path = tmp_path / "run.err"
    with log_path.open("w") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "run", "--broker", cluster.bootstrap,
             "--port", str(port), "--sessions", "0", "--end-grace-ms", "1000",
             "--partitions", str(PARTITIONS)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 120
        while "admin token:" not in log_path.read_text():
            assert run.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "rapport run did not start its server"
            time.sleep(0.3)

        def token(scope: str) -> str:
            return subprocess.run(
                [sys.executable, "-m", "services.cli", "tokens", "create", "--clinic", clinic,
                 "--scope", scope], cwd=ROOT, env=env, capture_output=True, text=True,
                check=True).stdout.strip().splitlines()[-1]

        ingest, reports = token("ingest"), token("reports")
        for k in range(0, len(lines), 500):
            status, answer = _http(port, "POST", "/v1/events", ingest,
                                   b"\n".join(lines[k : k + 500]))
            assert status == 202, answer
        deadline = time.monotonic() + 180
        while True:
            status, page = _http(port, "GET", "/v1/sessions?limit=100", reports)
            assert status == 200, page
            if page["count"] >= len(expected):
                break
            assert run.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, f"{page['count']} of {len(expected)} stored"
            time.sleep(1)
        assert sorted(s["session_id"] for s in page["sessions"]) == sorted(expected)
        # The ingest pseudonymizes participant ids as they enter (issue 16 finding 5), with
        # the store's key: the stored reports are the analysis of the events so hidden.
        hide = Pseudonymizer(load_key(None, tmp_path / "data")).apply
        hidden = offline_reports([orjson.dumps(hide(orjson.loads(line))) for line in lines])
        for session_id, report in hidden.items():
            status, stored = _http(port, "GET", f"/v1/sessions/{session_id}/report", reports)
            assert status == 200, stored
            assert stored["report"] == report, session_id
        assert "Traceback" not in log_path.read_text()
    finally:
        run.terminate()
        run.wait(timeout=60)
