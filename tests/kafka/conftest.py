"""Kafka tier: the streaming pipeline on a real Apache Kafka cluster (KRaft, Kafka 4.1),
started by ``rapport kafka`` as a subprocess: what the embedded broker cannot show —
replication with acks=all, a broker killed with SIGKILL, real group coordination.

Run this tier alone with ``.venv/bin/pytest tests/kafka`` after ``make kafka`` (it resolves
the Kafka jars through Maven; ``make test`` does it first). Without Java or the jars its
tests skip saying why, except with ``CI=true``, where they fail.

The clusters (1 broker, then 3) are shared by the tests of the session, one at a time to
spare the two cores: asking for another size stops the running one. Each test gets fresh
topics (``fresh_topics``) and its own consumer group (``--app-id``), so no output of an
earlier test can be read as its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from kafkakit import Cluster, requirements, start, stopped


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[int], Cluster]]:
    """``kafka_cluster(n)``: the session's running n-broker cluster (started on first use;
    a running cluster of another size is stopped first)."""
    missing = requirements()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"tests/kafka need Java and the Kafka jars in CI: {missing}")
        pytest.skip(f"no real Kafka here: {missing}")
    running: dict[int, Cluster] = {}

    def cluster(size: int) -> Cluster:
        if size not in running:
            for other in list(running.values()):
                stopped(other)
                del running[other.size]
            running[size] = start(size, tmp_path_factory.mktemp(f"kafka{size}"))
        return running[size]

    yield cluster
    for other in running.values():
        stopped(other)
