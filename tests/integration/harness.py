"""Helpers for pipeline tests: worker processes on the embedded broker or a real Kafka
cluster (tests/kafka), a producer, and a reader of the output topics. Workers are real
``rapport worker`` processes, so they can be killed with SIGKILL like a crashed machine."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from models.analyzer import Analyzer
from models.errors import ValidationError
from models.events import SessionStart, parse_json
from models.topics import Topics
from services.feeder import feed_key
from streams.broker_probe import faust_broker

ROOT = Path(__file__).resolve().parents[2]
PARTITIONS = 4
TOPICS = Topics()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Worker:
    """A ``rapport worker`` process with /metrics on its own port; output in ``log``. On
    the embedded broker (``embedded``) with its fetch settings, else with the worker's
    defaults for real Kafka."""

    def __init__(self, bootstrap: str, log: Path, *extra: str,
                 env: dict[str, str] | None = None, embedded: bool = True,
                 log_level: str = "INFO") -> None:
        self.port = free_port()
        self.log = log
        command = [sys.executable, "-m", "services.cli", "--log-level", log_level, "worker",
                   "--broker", faust_broker(bootstrap), "--partitions", str(PARTITIONS),
                   "--declare-topics", "no", "--web-port", str(self.port),
                   "--end-grace-ms", "1000", "--idle-timeout-s", "60", *extra]
        if embedded:
            command += ["--broker-kind", "embedded", "--fetch-max-wait-ms", "10",
                        "--fetch-min-interval-ms", "20"]
        with open(log, "ab") as out:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=out,
                                            env={**os.environ, **(env or {})})

    def metrics(self) -> dict[str, float]:
        """The worker's Prometheus samples, ``name{labels}`` -> value."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as r:
            text = r.read().decode()
        samples = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def assigned(self) -> int:
        try:
            return int(self.metrics().get("rapport_partitions_assigned", 0))
        except OSError:
            return 0

    def kill(self) -> None:
        """SIGKILL: no goodbye to the group, no flush, no commit."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


async def wait_until(condition: Callable[[], Any], timeout: float, what: str,
                     workers: Iterable[Worker] = ()) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        for worker in workers:
            if worker.process.poll() is not None:
                raise AssertionError(f"worker died while waiting for {what}:\n{worker.tail()}")
        if time.monotonic() > deadline:
            logs = "\n".join(w.tail() for w in workers)
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{logs}")
        await asyncio.sleep(0.2)


class Producer:
    """Events onto the events topic, keyed by session key (``clinic_id session_id``, the
    clinic from the session's ``session.start`` sent before); ``idempotent`` where a broker
    may die mid-send (a retried batch is then written once)."""

    def __init__(self, bootstrap: str, idempotent: bool = False) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                          max_request_size=16 * 1024 * 1024, linger_ms=5,
                                          enable_idempotence=idempotent)
        self.clinics: dict[str, str] = {}
        # Lines of sessions whose start has not come yet (a file's events may precede it):
        # sent right after it, keyed by clinic; any left at exit are sent keyed by id alone.
        self._orphans: dict[bytes, list[bytes]] = {}

    async def __aenter__(self) -> Producer:
        await self._producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        for key, orphans in self._orphans.items():
            for line in orphans:
                await self._producer.send(TOPICS.events, line, key=key)
        await self._producer.stop()

    async def send(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            session = self._start_of(line)
            if session is None:
                key = feed_key(line, self.clinics)
                if key is not None and b" " not in key:  # its session's start is to come
                    self._orphans.setdefault(key, []).append(line)
                    continue
                await self._producer.send(TOPICS.events, line, key=key)
                continue
            await self._producer.send(TOPICS.events, line, key=feed_key(line, self.clinics))
            for orphan in self._orphans.pop(session.encode(), []):
                await self._producer.send(TOPICS.events, orphan,
                                          key=feed_key(orphan, self.clinics))
        await self._producer.flush()

    def _start_of(self, line: bytes) -> str | None:
        """The session a ``session.start`` line starts (its clinic learned), else None."""
        if b"session.start" not in line:
            return None
        with contextlib.suppress(ValidationError):
            event = parse_json(line)
            if isinstance(event, SessionStart):
                self.clinics.setdefault(event.session_id, event.clinic_id)
                return event.session_id
        return None


class Outputs:
    """Reads every output topic from the beginning; keeps all records, duplicates included."""

    def __init__(self, bootstrap: str) -> None:
        self.records: dict[str, list[dict[str, Any]]] = {
            name: [] for name in (TOPICS.reports, TOPICS.dlq, TOPICS.quality, TOPICS.alerts)}
        self._consumer = AIOKafkaConsumer(
            *self.records, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
            group_id=None, fetch_max_wait_ms=50, max_partition_fetch_bytes=16 * 1024 * 1024)

    async def __aenter__(self) -> Outputs:
        await self._consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def poll(self) -> None:
        batches = await self._consumer.getmany(timeout_ms=100)
        for tp, messages in batches.items():
            self.records[tp.topic].extend(orjson.loads(m.value) for m in messages)

    async def until(self, condition: Callable[[Outputs], bool], timeout: float, what: str,
                    workers: Iterable[Worker] = ()) -> None:
        workers = list(workers)

        async def check() -> bool:
            await self.poll()
            return condition(self)

        deadline = time.monotonic() + timeout
        while not await check():
            for worker in workers:
                if worker.process.poll() is not None:
                    raise AssertionError(f"worker died waiting for {what}:\n{worker.tail()}")
            if time.monotonic() > deadline:
                logs = "\n".join(w.tail() for w in workers)
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; "
                                     f"{len(self.reports)} reports\n{logs}")

    @property
    def reports(self) -> list[dict[str, Any]]:
        return self.records[TOPICS.reports]

    @property
    def dead_letters(self) -> list[dict[str, Any]]:
        return self.records[TOPICS.dlq]

    def reported_sessions(self) -> set[str]:
        return {r["session_id"] for r in self.reports}


def offline_reports(lines: list[bytes]) -> dict[str, dict[str, Any]]:
    """What ``rapport analyze`` reports for the same lines (its engine, in input order)."""
    analyzer = Analyzer()
    for number, line in enumerate(lines, 1):
        try:
            event = parse_json(line)
        except ValueError:
            continue
        analyzer.feed(event, number)
    return {r["session_id"]: r for r in analyzer.finish_all()}


def simulate_lines(*args: str) -> list[bytes]:
    """``rapport simulate`` output as lines."""
    output = subprocess.run([sys.executable, "-m", "services.cli", "simulate", *args],
                            cwd=ROOT, check=True, capture_output=True,
                            env={**os.environ}).stdout
    return [line for line in output.split(b"\n") if line]


def malformed(huge_bytes: int) -> list[bytes]:
    """Rejected input, one of each reason; the last is ``huge_bytes`` long."""
    return [
        b'{"type": "speech", "session_id": ',  # bad JSON
        b'{"type": "hello", "session_id": "sim-0001"}',  # unknown type
        b'{"type": "session.end", "session_id": "sim-0002", "ts_ms": "soon"}',  # wrong type
        b'{"type":"speech","session_id":"sim-0001","pad":"' + b"x" * huge_bytes + b'"}',
    ]


def check_dead_letters(dead_letters: list[dict[str, Any]], bad: list[bytes]) -> None:
    """The dead letters of :func:`malformed` input (``bad``; without its huge last line
    when it is only three long): reason, field, error and raw bytes of each."""
    dead = {f"{d['reason']}:{d['field']}": d for d in dead_letters}
    expected = {"malformed_json:json", "invalid:type", "invalid:session.end.ts_ms"}
    if len(bad) > 3:
        expected.add("too_large:event")
        big = dead["too_large:event"]
        assert big["raw_size"] == len(bad[3]) and big["raw_truncated"]
        assert base64.b64decode(str(big["raw"])) == bad[3][:65_536]
    assert set(dead) == expected
    assert len(dead_letters) == len(bad)
    assert "unknown event type 'hello'" in str(dead["invalid:type"]["error"])
    assert dead["invalid:session.end.ts_ms"]["session_id"] == "sim-0002"
    assert base64.b64decode(str(dead["malformed_json:json"]["raw"])) == bad[0]


def _differences(got: Any, want: Any, path: str = "") -> list[str]:
    """Where two JSON values differ (a failure message that says what to look at)."""
    if isinstance(got, dict) and isinstance(want, dict):
        return [line for key in sorted(set(got) | set(want), key=str)
                for line in _differences(got.get(key), want.get(key), f"{path}.{key}")]
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        return [line for i, (a, b) in enumerate(zip(got, want, strict=True))
                for line in _differences(a, b, f"{path}[{i}]")]
    return [] if got == want else [f"{path or '.'}: {got!r} (expected {want!r})"]


def _dead_letters_of(outputs: Outputs, session_id: str) -> str:
    """The session's dead letters, by reason and field, and the first one's error."""
    mine = [d for d in outputs.dead_letters if d.get("session_id") == session_id]
    if not mine:
        return "no dead letters"
    kinds = Counter(f"{d.get('reason')}:{d.get('field')}" for d in mine)
    return f"dead letters {dict(kinds)}, the first: {mine[0].get('error')!r}"


def assert_reports_match(outputs: Outputs, expected: dict[str, dict[str, Any]],
                         workers: Iterable[Worker | None] = ()) -> None:
    """Every expected session reported once, each report equal to the offline one; on a
    failure the message ends with the tails of ``workers``' logs (a rare failure on a loaded
    machine should say what happened)."""
    try:
        _assert_reports_match(outputs, expected)
    except AssertionError as error:
        logs = "\n".join(f"--- {w.log.name}:\n{w.tail()}" for w in workers if w is not None)
        if not logs:
            raise
        raise AssertionError(f"{error}\n{logs}") from None


def _assert_reports_match(outputs: Outputs, expected: dict[str, dict[str, Any]]) -> None:
    published = [r["session_id"] for r in outputs.reports]
    repeated = sorted({s for s in published if published.count(s) > 1})
    missing = sorted(set(expected) - set(published))
    assert not repeated and not missing, f"published twice: {repeated}; missing: {missing}"
    assert sorted(published) == sorted(expected)
    for number, record in enumerate(outputs.reports, 1):
        session_id = record["session_id"]
        assert record["report"] == expected[session_id], (
            f"{session_id} (report {number} of {len(outputs.reports)} published, ended by "
            f"{record.get('ended_by')}; {_dead_letters_of(outputs, session_id)}) differs "
            f"from rapport analyze: "
            + "; ".join(_differences(record["report"], expected[session_id])))
        assert record["schema_version"] == 1
        assert record["clinic_id"] == expected[record["session_id"]]["clinic_id"]
