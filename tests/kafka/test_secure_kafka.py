"""A Kafka that clients reach only over TLS with a SASL password, as a managed Kafka is
reached (``rapport kafka --secure``): the whole job runs on it with the ``RAPPORT_KAFKA_*``
settings it prints — ingest producer, Faust workers, report collector, topic administration —
and without them, or with a wrong password, it stops with one line saying why."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from harness import ROOT
from kafkakit import Cluster, requirements, start, stopped

from services.kafka_admin import REQUEST_TIMEOUT_S

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def secure_cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    missing = requirements()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"tests/kafka need Java and the Kafka jars in CI: {missing}")
        pytest.skip(f"no real Kafka here: {missing}")
    cluster = start(1, tmp_path_factory.mktemp("kafka-secure"), "--secure")
    yield cluster  # type: ignore[misc]
    stopped(cluster)


def settings(cluster: Cluster) -> dict[str, str]:
    text = (cluster.data / "rapport-kafka.out").read_text()
    return dict(re.findall(r"^(RAPPORT_KAFKA_\w+)=(.*)$", text, re.M))


def run_job(cluster: Cluster, tmp_path: Path, env: dict[str, str],
            sessions: int = 2) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAPPORT_KAFKA_")}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "run", "--broker", cluster.bootstrap,
         "--sessions", str(sessions), "--minutes", "1", "--speed", "20", "--partitions", "4",
         "--exit-when-done",
         "--reports", str(tmp_path / "reports.jsonl")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        env={**clean, "RAPPORT_DATA_DIR": str(tmp_path / "data"), **env})


def test_the_job_runs_over_tls_and_sasl_with_the_printed_settings(
        secure_cluster: Cluster, tmp_path: Path) -> None:
    env = settings(secure_cluster)
    assert env["RAPPORT_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert Path(env["RAPPORT_KAFKA_SSL_CAFILE"]).is_file()
    done = run_job(secure_cluster, tmp_path, env)
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [orjson.loads(line) for line in
               (tmp_path / "reports.jsonl").read_text().splitlines()]
    assert len({r["session_id"] for r in reports}) == 2
    assert all(r["duration_s"] > 0 for r in reports)
    assert env["RAPPORT_KAFKA_SASL_PASSWORD"] not in done.stderr + done.stdout


@pytest.mark.parametrize("change, expected, definitive", [
    ({"RAPPORT_KAFKA_SASL_PASSWORD": "wrong"}, "Invalid username or password", True),
    ({"RAPPORT_KAFKA_SSL_CAFILE": ""}, "certificate verify failed", True),
    (None, "security protocol PLAINTEXT; a cluster that needs TLS or SASL takes the "
           "RAPPORT_KAFKA_* settings", False),
])
def test_wrong_or_missing_settings_stop_the_job_with_the_reason(
        secure_cluster: Cluster, tmp_path: Path, change: dict[str, str] | None,
        expected: str, definitive: bool) -> None:
    env = {} if change is None else {**settings(secure_cluster), **change}
    began = time.monotonic()
    done = run_job(secure_cluster, tmp_path, env)
    took = time.monotonic() - began
    assert done.returncode == 1, done.stderr[-3000:]
    if definitive:
        # A refused password or certificate does not mend itself: the job says so at once
        # instead of waiting out the cluster's answer (services/kafka_admin.py, 10 s).
        assert took < REQUEST_TIMEOUT_S - 1, f"stopped after {took:.1f} s"
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "reports.jsonl").exists() or not (
        tmp_path / "reports.jsonl").read_text().strip()
