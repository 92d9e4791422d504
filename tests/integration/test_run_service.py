"""The main job's one port (`rapport run --port`): health, readiness and the job's metrics,
which move as events flow and count rejected events by reason."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from harness import ROOT, free_port

from models.topics import Topics

pytestmark = pytest.mark.slow


def _get(port: int, path: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _sample(metrics: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in metrics.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        head, _, value = line.rpartition(" ")
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            total += float(value)
    return total


async def _publish(bootstrap: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(Topics().events, value, key=b"intruder")
    finally:
        await producer.stop()


def test_run_port_serves_health_and_metrics_that_move(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "RAPPORT_DATA_DIR": str(tmp_path / "data")}
    env.pop("RAPPORT_DB_URL", None)
    log = (tmp_path / "run.err").open("w+")
    run = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "--log-level", "INFO", "run", "--port", str(port),
         "--sessions", "2",
         "--minutes", "2", "--speed", "4", "--reports", str(tmp_path / "reports.jsonl"),
         "--partitions", "4"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while "admin token:" not in (tmp_path / "run.err").read_text():
            assert run.poll() is None, (tmp_path / "run.err").read_text()
            assert time.monotonic() < deadline, "rapport run did not start its server"
            time.sleep(0.3)
        text = (tmp_path / "run.err").read_text()
        bootstrap = re.search(r"embedded broker at (\S+)", text).group(1)  # type: ignore[union-attr]
        token = re.search(r"admin token: (\S+)", text).group(1)  # type: ignore[union-attr]

        status, body = _get(port, "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        deadline = time.monotonic() + 60
        while _get(port, "/readyz")[0] != 200:
            assert time.monotonic() < deadline, _get(port, "/readyz")[1]
            time.sleep(0.5)

        def consumed() -> float:
            return _sample(_get(port, "/metrics")[1], "rapport_events_consumed_total")

        deadline = time.monotonic() + 60  # simulated sessions start staggered
        while (first := consumed()) == 0:
            assert time.monotonic() < deadline, "no event consumed"
            time.sleep(0.5)
        deadline = time.monotonic() + 30
        while consumed() <= first:
            assert time.monotonic() < deadline, "the consumed counter does not move"
            time.sleep(0.5)

        asyncio.run(_publish(bootstrap, [b"{not json", b'{"type": "nope", "session_id": "x"}']))
        deadline = time.monotonic() + 30
        while True:
            metrics = _get(port, "/metrics")[1]
            malformed = _sample(metrics, "rapport_events_rejected_total",
                                reason="malformed_json")
            invalid = _sample(metrics, "rapport_events_rejected_total", reason="invalid")
            if malformed >= 1 and invalid >= 1:
                break
            assert time.monotonic() < deadline, metrics[-3000:]
            time.sleep(0.5)
        assert 'worker="0"' in metrics  # each worker's series labelled
        assert _get(port, "/v1/sessions")[0] == 401
        assert _get(port, "/v1/sessions", token)[0] == 200
        # SIGTERM stops the job promptly (it took 42 s while the store consumer waited for
        # the embedded broker to confirm its LeaveGroup; services/reports/consumer.py), and
        # cleanly: the store consumer leaves its group (until 2026-12-06 SIGTERM had asyncio
        # cancel aiokafka's own tasks with the job's, the leave went unanswered and the job
        # waited out LEAVE_TIMEOUT_S; services/cli/job.py).
        asked = time.monotonic()
        run.terminate()
        run.wait(60)
        text = (tmp_path / "run.err").read_text()
        assert time.monotonic() - asked < 15, text[-3000:]
        assert "store consumer stopped" in text, text[-3000:]
        assert "did not confirm the leave" not in text, text[-3000:]
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(60)
        log.close()
