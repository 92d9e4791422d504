"""A worker's health endpoints: alive, ready with its partitions, not ready while the broker
is down and ready again when it returns, without a restart."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from harness import PARTITIONS, TOPICS, Worker

from services.broker import EmbeddedBroker

pytestmark = pytest.mark.slow


def _get(port: int, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _until(check, timeout: float, what: str, worker: Worker) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert worker.process.poll() is None, worker.tail()
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{worker.tail()}"
        time.sleep(0.5)


def test_readyz_follows_the_broker_down_and_back_up(tmp_path: Path) -> None:
    with EmbeddedBroker() as broker:
        broker.create_topics(TOPICS.specs(PARTITIONS))
        worker = Worker(broker.bootstrap, tmp_path / "worker.log")
        try:
            _until(lambda: worker.assigned() == PARTITIONS, 60, "assignment", worker)
            assert _get(worker.port, "/healthz") == (200, {"status": "ok"})
            # Ready once the assignment's recovery is over (not rebalancing any more).
            _until(lambda: _get(worker.port, "/readyz")[0] == 200, 30, "ready", worker)
            status, body = _get(worker.port, "/readyz")
            assert status == 200 and body["ready"] is True
            assert body["partitions"] == list(range(PARTITIONS))

            broker.set_down()
            _until(lambda: _get(worker.port, "/readyz")[0] == 503, 30, "not ready", worker)
            status, body = _get(worker.port, "/readyz")
            assert body["ready"] is False
            assert any(str(p).startswith("broker:") for p in body["problems"])  # type: ignore[union-attr]
            assert _get(worker.port, "/healthz")[0] == 200  # alive all along

            broker.set_down(False)
            _until(lambda: _get(worker.port, "/readyz")[0] == 200, 60, "ready again", worker)
            assert worker.process.poll() is None
        finally:
            worker.stop()
