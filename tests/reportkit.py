"""Shared helpers for the report store and report API tests (issue 5).

Builders of the records the streaming workers publish (``models/records.py``), the database
backends the store tests run on (a SQLite file in ``tmp_path``; the local PostgreSQL, or the
one at ``RAPPORT_TEST_PG_URL``, in a fresh schema per test, skipped when unreachable unless
``CI=true``), and :class:`Api`, a synchronous wrapper around aiohttp's ``TestClient`` so tests
read top to bottom.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.reports import create_app
from services.store import ReportStore

KEY = b"test-pseudonym-key-0123456789abcdef"
PG_URL = os.environ.get("RAPPORT_TEST_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "postgresql")


def day_ms(day: str, hour: int = 10) -> int:
    """Epoch ms of ``day`` (YYYY-MM-DD) at ``hour``:00 UTC."""
    moment = datetime.fromisoformat(day).replace(hour=hour, tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


# --- worker records (models/records.py) ------------------------------------------------------


def final_report(session_id: str, clinic: str, *, duration_s: float = 600.0,
                 therapist_share: float = 0.6, alerts: Sequence[dict[str, Any]] = (),
                 therapist: str = "t1", client: str = "p1") -> dict[str, Any]:
    """A small METRICS.md §10 final report; participant ids appear where the engine puts
    them (``quality.participants`` keys, ``network_degraded`` alerts)."""
    role = {"talk_s": 100.0, "turns": 10, "longest_monologue_s": 30.0,
            "backchannels_per_min": 2.0,
            "response_latency_ms": {"median": 300.0, "p90": 500.0},
            "interruptions_made": {"successful": 1, "unsuccessful": 0}}
    return {
        "schema_version": 1, "session_id": session_id, "clinic_id": clinic, "final": True,
        "duration_s": duration_s,
        "roles": {"therapist": {**role, "talk_share": therapist_share},
                  "client": {**role, "talk_share": round(1 - therapist_share, 4)}},
        "session": {"balance_index": 0.8, "speaker_changes": 20, "turns_per_min": 2.0,
                    "overlap_s": 3.0, "collisions": 0, "silence_s": 60.0, "silence_ratio": 0.1,
                    "lapses": {"count": 1, "longest_s": 4.0}, "interruption_asymmetry": 0.0},
        "quality": {"participants": {therapist: {"role": "therapist", "coverage": 1.0},
                                     client: {"role": "client", "coverage": 1.0}},
                    "low_confidence": False},
        "alerts": list(alerts),
    }


def report_record(session_id: str = "s1", clinic: str = "c1", *, start_ms: int | None = None,
                  therapist: str = "t1", client: str = "p1", ended_by: str = "session.end",
                  **report: Any) -> dict[str, Any]:
    start = day_ms("2026-03-02") if start_ms is None else start_ms
    body = final_report(session_id, clinic, therapist=therapist, client=client, **report)
    return {"schema_version": 1, "type": "report", "session_id": session_id,
            "clinic_id": clinic, "event_time_ms": start + int(body["duration_s"] * 1000),
            "ended_by": ended_by, "start_ms": start,
            "participants": [{"participant_id": therapist, "role": "therapist"},
                             {"participant_id": client, "role": "client"}],
            "report": body}


def ipu(n: int, pid: str, role: str, start_ms: int, end_ms: int,
        backchannel: bool = False) -> dict[str, Any]:
    return {"n": n, "kind": "ipu", "ts_ms": start_ms, "participant_id": pid, "role": role,
            "start_ms": start_ms, "end_ms": end_ms, "backchannel": backchannel}


def interruption(n: int, ts_ms: int, by: str = "t1", of: str = "p1") -> dict[str, Any]:
    return {"n": n, "kind": "interruption", "ts_ms": ts_ms, "by": by, "by_role": "therapist",
            "of": of, "of_role": "client", "direction": "therapist_to_client",
            "outcome": "successful", "overlap_ms": 700}


def quality_record(session_id: str, clinic: str, events: Sequence[dict[str, Any]],
                   event_time_ms: int = 10_000) -> dict[str, Any]:
    return {"schema_version": 1, "type": "quality", "session_id": session_id,
            "clinic_id": clinic, "event_time_ms": event_time_ms,
            "snapshot": {"session_id": session_id, "final": False},
            "events": list(events), "source": {"topic": "rapport.events", "partition": 0,
                                               "offset": 1, "timestamp_ms": 0}}


def alert_record(session_id: str, clinic: str, alert: str, ts_ms: int,
                 **detail: Any) -> dict[str, Any]:
    return {"schema_version": 1, "type": "alert", "session_id": session_id,
            "clinic_id": clinic, "event_time_ms": ts_ms,
            "alert": {"kind": "alert", "alert": alert, "ts_ms": ts_ms, **detail}}


# --- backends --------------------------------------------------------------------------------


def _postgres_or_skip() -> None:
    import psycopg

    try:
        psycopg.connect(PG_URL.replace("postgresql+psycopg://", "postgresql://"),
                        connect_timeout=3).close()
    except psycopg.OperationalError as error:
        reason = f"PostgreSQL unreachable at {PG_URL}: {str(error).strip().splitlines()[0]}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true requires it)")
        pytest.skip(reason)


@contextmanager
def backend_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database URL for one test: a new SQLite file, or a new PostgreSQL schema (dropped
    afterwards) selected through the connection's ``search_path``."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'reports.db'}"
        return
    _postgres_or_skip()
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def open_store(backend: str, tmp_path: Path) -> Iterator[ReportStore]:
    with backend_url(backend, tmp_path) as url, ReportStore(url, KEY) as store:
        yield store


# --- the API ---------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class Api:
    """The report app on a test server, driven synchronously (its own event loop)."""

    def __init__(self, store: ReportStore) -> None:
        self._loop = asyncio.new_event_loop()
        self._client: TestClient[Any, Any] = self._loop.run_until_complete(self._start(store))

    @staticmethod
    async def _start(store: ReportStore) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(store)))
        await client.start_server()
        return client

    def get(self, path: str, token: str | None = None, **params: Any) -> Reply:
        return self.request("GET", path, token=token, params=params)

    def request(self, method: str, path: str, *, token: str | None = None,
                headers: dict[str, str] | None = None, params: dict[str, Any] | None = None,
                data: Any = None, allow_redirects: bool = True) -> Reply:
        """Any request; cookies set by earlier answers are sent back (the client's jar)."""
        sent = {"Authorization": f"Bearer {token}"} if token else {}
        sent.update(headers or {})

        async def call() -> Reply:
            async with self._client.request(method, path, headers=sent, params=params or {},
                                            data=data, allow_redirects=allow_redirects
                                            ) as response:
                return Reply(response.status, dict(response.headers), await response.read())

        return self._loop.run_until_complete(call())

    @property
    def host(self) -> str:
        """``HOST:PORT`` the test server answers on (what a browser sends as ``Host``)."""
        return f"{self._client.host}:{self._client.port}"

    def clear_cookies(self) -> None:
        self._client.session.cookie_jar.clear()

    def close(self) -> None:
        self._loop.run_until_complete(self._client.close())
        self._loop.close()


@contextmanager
def api(store: ReportStore) -> Iterator[Api]:
    client = Api(store)
    try:
        yield client
    finally:
        client.close()


# --- records from the engine ------------------------------------------------------------------


def engine_records(clinic: str, *, sessions: int = 2, minutes: float = 5.0, seed: int = 1,
                   style: str = "mixed") -> list[tuple[str, bytes, bytes]]:
    """(topic role, key, value) of the quality, alert and report records the workers publish
    for simulated sessions (services/reports/samples.py), moved to ``clinic`` and named
    ``<clinic>-<n>``."""
    from models.simulation import SimulationConfig
    from services.reports.samples import simulated_records

    config = SimulationConfig(sessions=sessions, minutes=minutes, seed=seed, style=style,
                              session_id_prefix=clinic)
    out = []
    for record in simulated_records(config):
        data = orjson.loads(record.value)
        data["clinic_id"] = clinic
        if data["type"] == "report":
            data["report"]["clinic_id"] = clinic
        out.append((record.role, record.key or b"", orjson.dumps(data)))
    return out
