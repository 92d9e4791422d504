"""A consumer-group error that no rejoin cures, on a real Kafka (streams/kafka.py, point 4):
aiokafka hands it to "the user" and waits until the user has seen it; Faust never looks, so
without the worker's own check the worker would sit there owning nothing, looking alive.
A session timeout below the broker's ``group.min.session.timeout.ms`` (6 s by default) is
such an error: the broker refuses the worker's JoinGroup with INVALID_SESSION_TIMEOUT."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from harness import Worker
from kafkakit import Cluster, fresh_topics

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_a_worker_the_group_refuses_stops_and_says_why(kafka_cluster: Any,
                                                       tmp_path: Path) -> None:
    cluster: Cluster = kafka_cluster(1)
    app_id = "t-group-refused"
    fresh_topics(cluster, app_id)
    worker = Worker(cluster.bootstrap, tmp_path / "worker.log", "--app-id", app_id,
                    "--session-timeout-s", "3", embedded=False)
    try:
        deadline = time.monotonic() + 60
        while worker.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert worker.process.poll() is not None, \
            f"the worker still runs 60 s after the group refused it:\n{worker.tail()}"
        assert worker.process.returncode != 0
        assert "InvalidSessionTimeoutError" in worker.log.read_text(errors="replace")
    finally:
        worker.stop()
