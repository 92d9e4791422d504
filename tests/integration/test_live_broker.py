"""The live dashboard on the embedded broker (issue 5; services/reports/live_consumer.py):
records the workers' logic produced for simulated sessions, published to rapport.quality,
rapport.alerts and rapport.reports, reach a ``/v1/live`` Server-Sent Events stream through the
live consumer; records published before it started do not (live only), it commits nothing
and joins no group, and a session leaves the dashboard when its report arrives."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer
from harness import PARTITIONS, TOPICS
from reportkit import KEY, engine_records
from test_report_consumer import committed, produce

from services.broker import EmbeddedBroker
from services.reports import LiveConsumer, LiveHub, add_live_routes, create_app
from services.store import ReportStore

ROOT = Path(__file__).resolve().parents[2]


async def read_events(stream: Any, until: str, session_id: str, updates: int = 0,
                      timeout: float = 60) -> list[tuple[str, dict[str, Any]]]:
    """Events of an SSE stream up to the ``until`` event of ``session_id`` (for ``session``
    events: the one with ``updates`` updates)."""
    seen: list[tuple[str, dict[str, Any]]] = []
    kind, data = "message", b""
    deadline = time.monotonic() + timeout
    while True:
        line = await asyncio.wait_for(stream.content.readline(), deadline - time.monotonic())
        line = line.rstrip(b"\n")
        if line.startswith(b"event: "):
            kind = line[7:].decode()
        elif line.startswith(b"data: "):
            data = line[6:]
        elif not line and data:
            seen.append((kind, orjson.loads(data)))
            found = seen[-1][1]
            if kind == until and found.get("session_id") == session_id \
                    and found.get("updates", 0) >= updates:
                return seen
            data = b""


def test_live_consumer_streams_only_new_records(tmp_path: Path, broker: EmbeddedBroker) -> None:
    broker.create_topics(TOPICS.specs(PARTITIONS))
    old = engine_records("c0", sessions=1, minutes=2, seed=3)
    new = engine_records("c1", sessions=1, minutes=3, seed=1)
    other = engine_records("c2", sessions=1, minutes=2, seed=2)
    assert {role for role, _, _ in new} >= {"quality", "reports"}

    async def scenario(store: ReportStore) -> list[tuple[str, dict[str, Any]]]:
        await produce(broker.bootstrap, old)  # history: before the dashboard starts
        hub = LiveHub(hide=store.pseudonymize.apply)
        consumer = LiveConsumer(hub, f"kafka://{broker.bootstrap}", poll_timeout_ms=100)
        await consumer.start()
        tailing = asyncio.create_task(consumer.run())
        app = create_app(store)
        add_live_routes(app, hub)
        client: TestClient[Any, Any] = TestClient(TestServer(app))
        await client.start_server()
        try:
            token, _ = store.create_token("c1", "reports")
            stream = await client.get("/v1/live", headers={"Authorization": f"Bearer {token}"})
            assert stream.status == 200
            # The report last, once every update is shown: topics are not ordered between
            # them, and a report read first would end the session before its last updates.
            await produce(broker.bootstrap, [*other, *(r for r in new if r[0] != "reports")])
            events = await read_events(stream, "session", "c1-0001", updates=len(new) - 1)
            await produce(broker.bootstrap, [r for r in new if r[0] == "reports"])
            events += await read_events(stream, "ended", "c1-0001")
            stream.close()
            assert hub.sessions("c1") == [] and hub.sessions("c0") == []
            total = len(other) + len(new)
            deadline = time.monotonic() + 30
            while consumer.consumed < total and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            assert consumer.invalid == 0
            assert consumer.consumed == total  # none of the history
            return events
        finally:
            await client.close()
            await consumer.stop()
            await tailing

    with ReportStore(f"sqlite:///{tmp_path / 'reports.db'}", KEY) as store:
        events = asyncio.run(asyncio.wait_for(scenario(store), 120))
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "snapshot" and events[0][1]["sessions"] == []
    assert kinds[-1] == "ended" and events[-1][1]["reason"] == "report"
    updates = [data for kind, data in events if kind == "session"]
    quality = [orjson.loads(v) for role, _, v in new if role == "quality"]
    alerts = [orjson.loads(v) for role, _, v in new if role == "alerts"]
    assert len(updates) == len(quality) + len(alerts)
    assert {d["session_id"] for _, d in events[1:]} == {"c1-0001"}  # never another clinic
    assert updates[-1]["updates"] == len(updates)
    times = [u["event_time_ms"] for u in updates]
    assert times == sorted(times) and times[-1] == max(q["event_time_ms"] for q in quality)
    final = updates[-1]["roles"]["therapist"]["talk_share"]
    assert final == quality[-1]["snapshot"]["roles"]["therapist"]["talk_share"]
    assert asyncio.run(committed(broker.bootstrap, "rapport-reports")) == 0  # no group used
