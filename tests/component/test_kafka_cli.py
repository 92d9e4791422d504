"""``rapport kafka``'s plan and errors without starting Kafka, and the broker address forms
every ``--broker`` option takes (the bootstrap list ``rapport kafka`` prints)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.cli import main
from services.cli.worker import resolve_broker
from services.kafka_cluster import plan_nodes, server_properties
from streams.broker_probe import bootstrap_servers, faust_broker

PRINTED = "127.0.0.1:40001,127.0.0.1:40003"


@pytest.mark.parametrize("given", [
    PRINTED,
    f"kafka://{PRINTED}",
    "kafka://127.0.0.1:40001;kafka://127.0.0.1:40003",
    " 127.0.0.1:40001 , kafka://127.0.0.1:40003 ",
])
def test_every_broker_form_gives_the_same_brokers(given: str) -> None:
    assert bootstrap_servers(given) == PRINTED
    # Faust reads "kafka://a:1,b:2" as one host: each broker gets its own URL.
    assert faust_broker(given) == "kafka://127.0.0.1:40001;kafka://127.0.0.1:40003"


def test_worker_takes_the_printed_bootstrap_list(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("RAPPORT_RUNTIME_DIR", str(tmp_path))  # no embedded broker announced
    url, embedded = resolve_broker(PRINTED)
    assert url == "kafka://127.0.0.1:40001;kafka://127.0.0.1:40003"
    assert not embedded


def properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines())


def test_first_three_nodes_are_the_controller_quorum_the_rest_brokers() -> None:
    nodes = plan_nodes(5, list(range(9001, 9009)))
    assert [(n.node_id, n.controller) for n in nodes] == [
        (1, True), (2, True), (3, True), (4, False), (5, False)]
    first = properties(server_properties(nodes[0], nodes, Path("/d/1")))
    last = properties(server_properties(nodes[4], nodes, Path("/d/5")))
    voters = "1@127.0.0.1:9006,2@127.0.0.1:9007,3@127.0.0.1:9008"
    assert first["process.roles"] == "broker,controller"
    assert first["listeners"] == "PLAINTEXT://127.0.0.1:9001,CONTROLLER://127.0.0.1:9006"
    assert last["process.roles"] == "broker"
    assert last["listeners"] == "PLAINTEXT://127.0.0.1:9005"
    for node in (first, last):
        assert node["controller.quorum.voters"] == voters
        assert node["default.replication.factor"] == "3"
        assert node["min.insync.replicas"] == "2"
        assert node["offsets.topic.replication.factor"] == "3"


def test_one_node_replicates_once() -> None:
    nodes = plan_nodes(1, [9001, 9002])
    only = properties(server_properties(nodes[0], nodes, Path("/d/1")))
    assert only["process.roles"] == "broker,controller"
    assert only["controller.quorum.voters"] == "1@127.0.0.1:9002"
    assert only["offsets.topic.replication.factor"] == "1"
    assert only["min.insync.replicas"] == "1"


@pytest.fixture
def fake_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``$JAVA_HOME/bin/java`` that exists (never run: the classpath check comes first)."""
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\nexit 1\n")
    java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    return java


def test_missing_classpath_says_to_run_make_kafka(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_java: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("RAPPORT_KAFKA_CLASSPATH", str(tmp_path / "absent.txt"))
    assert main(["kafka", "--data", str(tmp_path / "data")]) == 1
    error = capsys.readouterr().err
    assert "absent.txt is missing: run `make kafka`" in error


def test_classpath_with_vanished_jars_says_to_run_make_kafka(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_java: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    listed = tmp_path / "classpath.txt"
    listed.write_text(f"{tmp_path / 'gone.jar'}\n")
    monkeypatch.setenv("RAPPORT_KAFKA_CLASSPATH", str(listed))
    assert main(["kafka", "--data", str(tmp_path / "data")]) == 1
    error = capsys.readouterr().err
    assert "gone.jar" in error and "run `make kafka`" in error


def test_missing_java_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    assert main(["kafka", "--data", str(tmp_path / "data")]) == 1
    assert "Java not found" in capsys.readouterr().err


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # kafka-storage format reads "--cluster-id -Abc..." as a missing argument (seen in
    # bench/pipeline.py, one broker start in 64): an id starting with "-" is drawn again.
    import uuid

    from services import kafka_cluster

    draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(bytes=b"\x04" + bytes(15))])
    monkeypatch.setattr(kafka_cluster.uuid, "uuid4", lambda: next(draws))
    cluster_id = kafka_cluster.new_cluster_id()
    assert not cluster_id.startswith("-") and len(cluster_id) == 22
