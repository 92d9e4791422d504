"""Helpers of the Kafka tier (tests/kafka/conftest.py says how to run it): a ``rapport
kafka`` subprocess as a :class:`Cluster`, and fresh topics for each test."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))

from harness import PARTITIONS, ROOT

from models.topics import Topics
from services.kafka_admin import KafkaAdminError, admin_client, ensure_topics, rapport_topics
from services.kafka_cluster import KafkaClusterError, die_with_parent, find_java, read_classpath

START_TIMEOUT_S = 180
_BROKER_LINE = re.compile(rb"broker (\d+) pid (\d+) port (\d+)")


@dataclass
class Cluster:
    """A running ``rapport kafka``: its bootstrap list and broker id -> (pid, port)."""

    size: int
    bootstrap: str
    brokers: dict[int, tuple[int, int]]
    process: subprocess.Popen[bytes]
    data: Path

    def stop(self) -> int:
        """SIGTERM, as a user's Ctrl-C; returns ``rapport kafka``'s exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        path = self.data / "rapport-kafka.err"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def requirements() -> str | None:
    try:
        find_java()
        read_classpath()
    except KafkaClusterError as error:
        return str(error)
    return None


def start(size: int, data: Path, *options: str) -> Cluster:
    """``rapport kafka --brokers size [options]`` as a user runs it; returns once it printed
    the bootstrap line (the brokers' lines before it)."""
    data.mkdir(parents=True, exist_ok=True)
    with (data / "rapport-kafka.out").open("wb") as out, \
            (data / "rapport-kafka.err").open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "kafka", "--brokers", str(size), "--data",
             str(data / "cluster"), "--partitions", str(PARTITIONS), *options],
            cwd=ROOT, stdout=out, stderr=err, preexec_fn=die_with_parent)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        text = (data / "rapport-kafka.out").read_bytes()
        match = re.search(rb"^bootstrap: (\S+)$", text, re.M)
        if match:
            brokers = {int(b): (int(pid), int(port))
                       for b, pid, port in _BROKER_LINE.findall(text)}
            return Cluster(size, match.group(1).decode(), brokers, process, data)
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            message = (data / "rapport-kafka.err").read_text(errors="replace")[-3000:]
            raise AssertionError(f"rapport kafka --brokers {size} did not start:\n{message}")
        time.sleep(0.2)


def stopped(cluster: Cluster) -> None:
    """Stop it and check that ``rapport kafka`` stopped its brokers and exited 0."""
    status = cluster.stop()
    assert status == 0, f"rapport kafka exited {status}:\n{cluster.log()}"
    for broker, (pid, _) in cluster.brokers.items():
        assert not alive(pid), f"broker {broker} (pid {pid}) outlived rapport kafka"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def fresh_topics(cluster: Cluster, app_id: str) -> None:
    """Delete Rapport's topics and the worker group ``app_id``'s changelog, and create them
    again, empty, as ``rapport kafka`` does (replication min(3, N), min.insync.replicas
    min(2, N)). A test takes an ``app_id`` of its own: the group's committed offsets stay."""
    names = [spec.name for spec in Topics().specs(PARTITIONS, app_id)]
    client = admin_client(cluster.bootstrap)
    present = set(client.list_topics(timeout=10).topics)
    doomed = [name for name in names if name in present]
    if doomed:
        for future in client.delete_topics(doomed, operation_timeout=30).values():
            future.result(timeout=40)
    deadline = time.monotonic() + 30
    while set(names) & set(client.list_topics(timeout=10).topics):
        assert time.monotonic() < deadline, "deleted topics still listed after 30 s"
        time.sleep(0.2)
    plans = rapport_topics(PARTITIONS, min(3, cluster.size), min(2, cluster.size),
                           app_id=app_id)
    while True:  # a broker may still be removing a deleted topic's partitions
        try:
            ensure_topics(cluster.bootstrap, plans)
            return
        except KafkaAdminError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
