"""A local Apache Kafka cluster (KRaft) of N broker processes, for development and the
``tests/kafka`` tier: what the embedded broker (services/broker.py) cannot show —
replication, a broker dying, real group coordination.

The jars come from Maven Central through ``make kafka`` (deploy/kafka/pom.xml), which
writes their classpath to :data:`DEFAULT_CLASSPATH_FILE`; nothing is downloaded here. Each
node is ``java -cp <classpath> kafka.Kafka server.properties`` on free loopback ports. The
first ``min(3, N)`` nodes are combined broker+controller nodes forming a static controller
quorum (``controller.quorum.voters``), the rest are brokers only. Storage is formatted once
per node (``kafka.tools.StorageTool format``) with a cluster id kept in the data
directory, so a second start on the same directory keeps its topics and data.
"""

from __future__ import annotations

import base64
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from models.errors import RapportError

if TYPE_CHECKING:
    from services.kafka_secure import SecureCluster

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CLASSPATH_FILE = ROOT / "deploy" / "kafka" / "target" / "classpath.txt"
CLASSPATH_ENV = "RAPPORT_KAFKA_CLASSPATH"  # another classpath file
MAX_CONTROLLERS = 3
# Small heaps: tests run up to three brokers on a 2-core machine. Serial GC and the C1
# compiler only start the JVM faster and cost little at development load (measured in
# docs/streaming.md, "A real Kafka cluster").
JVM_OPTIONS = ("-Xms256m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               "-Djava.awt.headless=true")
STOP_TIMEOUT_S = 20.0
_PR_SET_PDEATHSIG = 1

_LOG4J2 = """\
# Written by rapport kafka: each node logs to server.log in its own directory.
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.state.name = state.change.logger
logger.state.level = WARN
"""


class KafkaClusterError(RapportError):
    """The cluster could not be prepared, started or stopped."""


@dataclass(frozen=True, slots=True)
class Node:
    """One node's plan: its id, whether it votes in the controller quorum, its ports."""

    node_id: int
    controller: bool
    port: int
    controller_port: int | None
    client_port: int | None = None  # the SASL_SSL listener of a --secure cluster


@dataclass(frozen=True, slots=True)
class RunningNode:
    node: Node
    process: subprocess.Popen[bytes]
    directory: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def find_java() -> str:
    """``$JAVA_HOME/bin/java``, else ``java`` on the PATH."""
    home = os.environ.get("JAVA_HOME")
    candidate = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not candidate or not os.access(candidate, os.X_OK):
        raise KafkaClusterError(
            "Java not found: Kafka 4 needs a JDK or JRE 17+ (Debian: apt-get install "
            "openjdk-17-jre-headless), on the PATH or in $JAVA_HOME")
    return candidate


def classpath_file() -> Path:
    return Path(os.environ.get(CLASSPATH_ENV) or DEFAULT_CLASSPATH_FILE)


def read_classpath(path: Path | None = None) -> str:
    """The broker's runtime classpath written by ``make kafka``; checks its jars exist."""
    path = path or classpath_file()
    try:
        classpath = path.read_text().strip()
    except FileNotFoundError:
        raise KafkaClusterError(f"Kafka's classpath file {path} is missing: run `make kafka` "
                                "(it resolves the jars through Maven)") from None
    jars = [jar for jar in classpath.split(os.pathsep) if jar]
    absent = [jar for jar in jars if not os.path.exists(jar)]
    if not jars or absent:
        raise KafkaClusterError(f"Kafka's jars listed in {path} are missing "
                                f"({absent[:1] or 'none listed'}): run `make kafka`")
    return classpath


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports free now (bound together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def ports_needed(brokers: int, secure: bool = False) -> int:
    return brokers * (2 if secure else 1) + min(MAX_CONTROLLERS, brokers)


def plan_nodes(brokers: int, ports: Sequence[int], secure: bool = False) -> list[Node]:
    """Node ids 1..N; the first ``min(3, N)`` are broker+controller nodes, which need a
    second port each. ``ports`` holds N listener ports, then the controller ports, then
    (``secure``) N client listener ports."""
    if brokers < 1:
        raise KafkaClusterError("brokers must be >= 1")
    controllers = min(MAX_CONTROLLERS, brokers)
    if len(ports) < ports_needed(brokers, secure):
        raise KafkaClusterError(f"{ports_needed(brokers, secure)} ports needed, "
                                f"{len(ports)} given")
    return [Node(k + 1, k < controllers, ports[k],
                 ports[brokers + k] if k < controllers else None,
                 ports[brokers + controllers + k] if secure else None)
            for k in range(brokers)]


def server_properties(node: Node, nodes: Sequence[Node], data: Path,
                      secure: SecureCluster | None = None) -> str:
    """One node's server.properties; replication of internal topics follows the cluster
    size (3 copies, 2 in sync, on 3 brokers or more)."""
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes
                      if n.controller)
    replication = min(3, len(nodes))
    in_sync = min(2, len(nodes))
    listeners = f"PLAINTEXT://127.0.0.1:{node.port}"
    advertised = listeners
    protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    if secure is not None and node.client_port is not None:
        listeners += f",CLIENT://127.0.0.1:{node.client_port}"
        advertised = listeners
        protocols += ",CLIENT:SASL_SSL"
    if node.controller:
        listeners += f",CONTROLLER://127.0.0.1:{node.controller_port}"
    lines = {
        "process.roles": "broker,controller" if node.controller else "broker",
        "node.id": node.node_id,
        "controller.quorum.voters": voters,
        "listeners": listeners,
        "advertised.listeners": advertised,
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": protocols,
        "log.dirs": data,
        "default.replication.factor": replication,
        "min.insync.replicas": in_sync,
        "offsets.topic.replication.factor": replication,
        "transaction.state.log.replication.factor": replication,
        "transaction.state.log.min.isr": in_sync,
        "share.coordinator.state.topic.replication.factor": replication,
        "share.coordinator.state.topic.min.isr": in_sync,
        # A development cluster: a consumer group forms at once, not after 3 s, and fewer
        # threads and offsets partitions keep three brokers light on two cores.
        "group.initial.rebalance.delay.ms": 0,
        "offsets.topic.num.partitions": 10,
        "num.network.threads": 2,
        "num.io.threads": 4,
        "num.partitions": 1,
        **(secure.listener_properties() if secure is not None else {}),
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def new_cluster_id() -> str:
    """A Kafka cluster id: a random UUID, URL-safe base64 without padding (as
    ``kafka-storage random-uuid`` prints it), never starting with ``-``: kafka-storage would
    read such an id as an option ("argument --cluster-id/-t: expected one argument"), one
    start in 64; Kafka's own ``Uuid.randomUuid`` draws again for the same reason."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def die_with_parent() -> None:
    """For ``preexec_fn`` (Linux): the child gets SIGTERM when its parent dies, however it
    dies, so no broker outlives ``rapport kafka`` (nor a cluster its test run)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class KafkaCluster:
    """N local Kafka nodes under ``data``: ``start()`` formats (first time only) and starts
    them, ``bootstrap`` is ``127.0.0.1:P1,...``, ``stop()`` ends them (SIGTERM, then
    SIGKILL after a timeout)."""

    def __init__(self, brokers: int, data: Path, classpath: str | None = None,
                 java: str | None = None, secure: bool = False) -> None:
        if brokers < 1:
            raise KafkaClusterError("brokers must be >= 1")
        self.brokers = brokers
        self.data = data.resolve()
        # --secure: clients connect over TLS with a password (services/kafka_secure.py);
        # ``bootstrap`` is then the CLIENT listeners and ``internal`` the PLAINTEXT ones.
        self.secure: SecureCluster | None = None
        if secure:
            from services.kafka_secure import prepare  # cryptography, only when asked

            self.secure = prepare(self.data)
        self.internal = ""
        self.java = java or find_java()
        self.classpath = classpath or read_classpath()
        self.nodes: list[RunningNode] = []
        self.bootstrap = ""

    def start(self) -> str:
        self.data.mkdir(parents=True, exist_ok=True)
        self._check_size()
        secure = self.secure is not None
        nodes = plan_nodes(self.brokers, free_ports(ports_needed(self.brokers, secure)),
                           secure)
        log4j = self.data / "log4j2.properties"
        log4j.write_text(_LOG4J2)
        cluster_id = self._cluster_id()
        for node in nodes:
            directory = self.data / f"node-{node.node_id}"
            directory.mkdir(exist_ok=True)
            (directory / "server.properties").write_text(
                server_properties(node, nodes, directory / "data", self.secure))
        self._format([n for n in nodes
                      if not (self.data / f"node-{n.node_id}" / "data" / "meta.properties")
                      .exists()], cluster_id)
        for node in nodes:
            self.nodes.append(self._launch(node))
        self.internal = ",".join(f"127.0.0.1:{n.port}" for n in nodes)
        self.bootstrap = (",".join(f"127.0.0.1:{n.client_port}" for n in nodes) if secure
                          else self.internal)
        log.info("kafka: %d node(s) starting, bootstrap %s", len(nodes), self.bootstrap)
        return self.bootstrap

    def _check_size(self) -> None:
        """A data directory keeps its node count: a cluster cannot change its voters."""
        marker = self.data / "brokers"
        if marker.exists() and int(marker.read_text()) != self.brokers:
            raise KafkaClusterError(f"{self.data} holds a {marker.read_text().strip()}-broker "
                                    f"cluster, not {self.brokers}: use another --data")
        marker.write_text(f"{self.brokers}\n")

    def _cluster_id(self) -> str:
        path = self.data / "cluster-id"
        if not path.exists():
            path.write_text(new_cluster_id() + "\n")
        return path.read_text().strip()

    def _java(self, directory: Path, main: str, *args: str) -> list[str]:
        return [self.java, *JVM_OPTIONS, f"-Dkafka.logs.dir={directory}",
                f"-Dlog4j2.configurationFile={self.data / 'log4j2.properties'}",
                "-cp", self.classpath, main, *args]

    def _format(self, nodes: Sequence[Node], cluster_id: str) -> None:
        """``kafka-storage format`` for each new node, in parallel (a JVM start each). With
        a static quorum (controller.quorum.voters) Kafka 4 needs neither --standalone nor
        --initial-controllers."""
        running = []
        for node in nodes:
            directory = self.data / f"node-{node.node_id}"
            command = self._java(directory, "kafka.tools.StorageTool", "format",
                                 "--cluster-id", cluster_id,
                                 "--config", str(directory / "server.properties"))
            running.append((node, subprocess.Popen(command, stdout=subprocess.PIPE,
                                                   stderr=subprocess.STDOUT)))
        for node, process in running:
            output, _ = process.communicate(timeout=120)
            if process.returncode != 0:
                raise KafkaClusterError(f"formatting node {node.node_id}'s storage failed: "
                                        f"{output.decode(errors='replace').strip()[-2000:]}")

    def _launch(self, node: Node) -> RunningNode:
        directory = self.data / f"node-{node.node_id}"
        with open(directory / "stdout.log", "ab") as out:
            process = subprocess.Popen(
                self._java(directory, "kafka.Kafka", str(directory / "server.properties")),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent)
        return RunningNode(node, process, directory)

    def exited(self) -> str | None:
        """Why a node is no longer running (its exit status and log's cause), or None."""
        for running in self.nodes:
            code = running.process.poll()
            if code is not None:
                return (f"Kafka node {running.node.node_id} (pid {running.pid}) exited with "
                        f"status {code}: {self._cause(running)}")
        return None

    def _cause(self, running: RunningNode) -> str:
        text = ""
        for name in ("stdout.log", "server.log"):
            path = running.directory / name
            if path.exists():
                text += path.read_text(errors="replace")[-20_000:]
        if "Address already in use" in text:
            return (f"a port of {running.node.port}/{running.node.controller_port} is already "
                    "in use (taken after it was picked); start again")
        errors = [line for line in text.splitlines() if " ERROR " in line or "Exception" in line]
        where = running.directory / "server.log"
        return (errors[-1].strip()[:500] if errors else "no error logged") + f" (see {where})"

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM every node (brokers first, so their controlled shutdown still finds the
        controllers), wait, SIGKILL what is left."""
        brokers = [n for n in self.nodes if not n.node.controller]
        controllers = [n for n in self.nodes if n.node.controller]
        deadline = time.monotonic() + timeout_s
        for group in (brokers, controllers):
            for running in group:
                if running.process.poll() is None:
                    running.process.send_signal(signal.SIGTERM)
            for running in group:
                try:
                    running.process.wait(max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    log.warning("kafka node %d did not stop in %.0f s: killed",
                                running.node.node_id, timeout_s)
                    running.process.kill()
                    running.process.wait()
        self.nodes = []
