"""Issue 16 acceptance, end to end on one broker: two clinics use the same session id
through two ``rapport ingest`` processes and one worker; each gets its own correct report,
neither sees the other; and after the sessions, no Kafka topic (events, outputs, dead letters,
the worker's changelog) and no log line at DEBUG holds a raw participant id (findings 1, 5)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from harness import PARTITIONS, ROOT, TOPICS, Outputs, Worker, free_port

from models.analyzer import Analyzer
from models.checkpoint import MAGIC
from models.config import EngineConfig
from models.events import parse_event
from models.topics import DEFAULT_APP_ID
from services.broker import EmbeddedBroker
from services.store import ReportStore
from services.store.pseudonyms import Pseudonymizer

pytestmark = pytest.mark.slow  # about 40 s: two ingest processes and a worker

KEY = "tenancy-test-pseudonym-key-0123"
HIDE = Pseudonymizer(KEY.encode())
# Raw participant ids: none of them may be found on any topic or in any log.
A_IDS = ("dr-alice-smith-a1", "patient-jane-doe-1975")
B_IDS = ("dr-bob-jones-b2", "patient-john-roe-1980", "intruder-from-b")
RAW = (*A_IDS, *B_IDS)


def session(clinic: str, therapist: str, client: str, talk: list[tuple[str, int, int]],
            end_ms: int) -> list[dict[str, Any]]:
    who = {"t": therapist, "c": client}
    return [{"type": "session.start", "session_id": "s1", "ts_ms": 0, "clinic_id": clinic,
             "participants": [{"participant_id": therapist, "role": "therapist"},
                              {"participant_id": client, "role": "client"}]},
            *({"type": "speech", "session_id": "s1", "participant_id": who[p],
               "start_ms": a, "end_ms": b} for p, a, b in talk),
            {"type": "session.end", "session_id": "s1", "ts_ms": end_ms}]


A = session("clinic-a", *A_IDS[:2], [("t", 1000, 9000), ("c", 9400, 20_000),
                                     ("t", 20_500, 24_000)], 30_000)
B_START, *B_REST = session("clinic-b", *B_IDS[:2], [("t", 2000, 3000), ("c", 3500, 4500)],
                           12_000)
# Clinic B's probe of finding 1: its own "s1" (started while A's runs) with an intruder.
INTRUDER = [{"type": "participant.join", "session_id": "s1", "participant_id": B_IDS[2],
             "role": "client", "ts_ms": 5000},
            {"type": "speech", "session_id": "s1", "participant_id": B_IDS[2],
             "start_ms": 5000, "end_ms": 8000}]
B = [B_START, *INTRUDER, *B_REST]


class Ingest:
    """A ``rapport ingest`` process on the broker, DEBUG logs in ``log``."""

    def __init__(self, bootstrap: str, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "--log-level", "DEBUG", "ingest",
                 "--broker", f"kafka://{bootstrap}", "--port", str(self.port)],
                cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True)
        deadline = time.monotonic() + 60
        while self.status("GET", "/healthz", None, None) != 200:
            assert self.process.poll() is None and time.monotonic() < deadline, \
                log.read_text(errors="replace")[-3000:]
            time.sleep(0.3)

    def status(self, method: str, path: str, token: str | None, body: Any) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", method=method,
            data=None if body is None else orjson.dumps(body),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            if token else {})
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except (urllib.error.URLError, ConnectionError):
            return 0

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "RAPPORT_PSEUDONYM_KEY": KEY, "RAPPORT_DATA_DIR": str(tmp_path),
            "RAPPORT_DB_URL": f"sqlite:///{tmp_path / 'tokens.db'}"}


@pytest.fixture
def ingests(broker: EmbeddedBroker, env: dict[str, str], tmp_path: Path
            ) -> Iterator[tuple[Ingest, Ingest]]:
    broker.create_topics(TOPICS.specs(PARTITIONS))
    ReportStore(env["RAPPORT_DB_URL"], KEY.encode()).close()  # migrated before two open it
    first = Ingest(broker.bootstrap, env, tmp_path / "ingest-1.log")
    try:
        second = Ingest(broker.bootstrap, env, tmp_path / "ingest-2.log")
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def offline(events: list[dict[str, Any]]) -> dict[str, Any]:
    analyzer = Analyzer(EngineConfig())
    for event in events:
        analyzer.feed(parse_event(event))
    (report,) = analyzer.finish_all()
    return report


async def dump(bootstrap: str) -> list[bytes]:
    """Every record of every topic (key, value, headers), the changelog's checkpoints
    decompressed (header and zlib flag as documented in models/checkpoint.py)."""
    names = [spec.name for spec in TOPICS.specs(PARTITIONS, DEFAULT_APP_ID)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=16 * 1024 * 1024)
    await consumer.start()
    out: list[bytes] = []
    try:
        partitions = [TopicPartition(n, p) for n in names for p in range(PARTITIONS)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await consumer.seek_to_beginning(*partitions)
        for tp in partitions:
            while await consumer.position(tp) < ends[tp]:
                for message in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, ()):
                    value = message.value or b""
                    if tp.topic.endswith("-changelog") and value[:3] == MAGIC \
                            and value[4] & 1:
                        value = value[:9] + zlib.decompress(value[9:])
                    out.append(b" ".join([message.key or b"", value,
                                          *(v for _, v in message.headers or ())]))
    finally:
        await consumer.stop()
    return out


def test_two_clinics_one_session_id_two_ingests_no_raw_ids(
        broker: EmbeddedBroker, env: dict[str, str], ingests: tuple[Ingest, Ingest],
        tmp_path: Path) -> None:
    first, second = ingests
    with ReportStore(env["RAPPORT_DB_URL"], KEY.encode()) as store:
        token_a, _ = store.create_token("clinic-a", "ingest")
        token_b, _ = store.create_token("clinic-b", "ingest")
    worker = Worker(broker.bootstrap, tmp_path / "worker.log", "--checkpoint-interval-s", "1",
                    env={"RAPPORT_PSEUDONYM_KEY": KEY}, log_level="DEBUG")
    try:
        async def scenario() -> Outputs:
            async with Outputs(broker.bootstrap) as outputs:
                # A starts s1 through the first ingest; B starts its own s1 through the
                # second and posts its intruder there, then A's remaining events arrive.
                assert first.status("POST", "/v1/events", token_a, A[:2]) == 202
                assert second.status("POST", "/v1/events", token_b, B[:3]) == 202
                # Before issue 16 B's end of "s1" ended A's session; now B's own.
                assert first.status("POST", "/v1/events", token_a, A[2:-1]) == 202
                assert second.status("POST", "/v1/events", token_b, B[3:]) == 202
                await asyncio.sleep(2)  # A's session outlives B's end by a while
                assert first.status("POST", "/v1/events", token_a, A[-1:]) == 202
                await outputs.until(lambda o: len(o.reports) >= 2, 120, "two reports",
                                    [worker])
                return outputs

        outputs = asyncio.run(asyncio.wait_for(scenario(), 180))
        reports = {(r["clinic_id"], r["session_id"]): r for r in outputs.reports}
        assert reports.keys() == {("clinic-a", "s1"), ("clinic-b", "s1")}
        assert not outputs.dead_letters, outputs.dead_letters
        # Each report is its own clinic's session only, computed on pseudonyms.
        assert reports["clinic-a", "s1"]["report"] == offline(HIDE.apply(A))
        assert reports["clinic-b", "s1"]["report"] == offline(HIDE.apply(B))
        assert {p["participant_id"] for p in reports["clinic-a", "s1"]["participants"]} == {
            HIDE(p) for p in A_IDS}
        assert reports["clinic-a", "s1"]["report"]["duration_s"] == 30.0
        for name, records in outputs.records.items():
            assert all(r["clinic_id"] in ("clinic-a", "clinic-b") for r in records), name
        # Finding 5: no raw participant id on any topic, nor in any log at DEBUG.
        records = asyncio.run(asyncio.wait_for(dump(broker.bootstrap), 60))
        assert any(HIDE(A_IDS[0]).encode() in r for r in records)  # the dump sees ids
        leaked = [(raw, r[:200]) for r in records for raw in RAW if raw.encode() in r]
        assert not leaked, leaked
    finally:
        worker.stop()
    first.stop()
    second.stop()
    logs = {path.name: path.read_text(errors="replace")
            for path in (first.log, second.log, worker.log)}
    assert all(re.search(r"DEBUG", text) for text in logs.values()), "not logging at DEBUG"
    leaked_logs = [(name, raw) for name, text in logs.items() for raw in RAW if raw in text]
    assert not leaked_logs, leaked_logs
