"""The live dashboard in process (issue 5; services/reports/live*.py): the hub fed directly
with the workers' records, the Server-Sent Events of ``/v1/live`` and ``/live/events`` read
with aiohttp's test client (snapshot first, then updates, alerts and ends), tenancy (a clinic
sees only its sessions), authentication (bearer on the API, the cookie on the page's stream),
no participant id ever sent, idle expiry, slow subscribers, and the page itself."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from reportkit import KEY, alert_record, engine_records

from services.auth import REVALIDATE_S
from services.reports import LiveHub, add_live_routes, create_app
from services.reports.live_pages import LIVE_CSP, SCRIPT
from services.store import ReportStore

Event = tuple[str, Any]


@pytest.fixture(scope="module")
def records() -> dict[str, list[dict[str, Any]]]:
    """Decoded worker records of one simulated session per clinic (engine output)."""
    return {clinic: [orjson.loads(value) for _, _, value in
                     engine_records(clinic, sessions=1, minutes=3, seed=seed)]
            for clinic, seed in (("c1", 1), ("c2", 2))}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReportStore]:
    with ReportStore(f"sqlite:///{tmp_path / 'reports.db'}", KEY) as opened:
        yield opened


def of(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in records if r["type"] == kind]


@asynccontextmanager
async def served(store: ReportStore, hub: LiveHub, keepalive_s: float = 15.0,
                 revalidate_s: float | None = None) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(store)
    add_live_routes(app, hub, keepalive_s=keepalive_s)
    if revalidate_s is not None:
        app[REVALIDATE_S] = revalidate_s
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def next_event(response: ClientResponse, timeout: float = 5.0) -> Event:
    """The next event of an SSE stream as (event name, decoded data); comments skipped."""
    kind, data = "message", b""
    while True:
        line = await asyncio.wait_for(response.content.readline(), timeout)
        assert line, "the stream ended"
        line = line.rstrip(b"\r\n")
        if not line:
            if data:
                return kind, orjson.loads(data)
            continue
        if line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        value = value.removeprefix(b" ")
        if name == b"event":
            kind = value.decode()
        elif name == b"data":
            data += value


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_stream_sends_a_snapshot_then_updates_of_its_clinic_only(
        store: ReportStore, records: dict[str, list[dict[str, Any]]]) -> None:
    c1, c2 = records["c1"], records["c2"]
    own, _ = store.create_token("c1", "reports")
    admin, _ = store.create_token("ops", "admin")

    async def scenario() -> None:
        hub = LiveHub(hide=store.pseudonymize.apply)
        hub.apply(of(c1, "quality")[0])
        hub.apply(of(c2, "quality")[0])
        async with served(store, hub) as client:
            clinic = await client.get("/v1/live", headers=bearer(own))
            everyone = await client.get("/v1/live", headers=bearer(admin))
            assert clinic.status == 200
            assert clinic.headers["Content-Type"].startswith("text/event-stream")
            kind, snapshot = await next_event(clinic)
            assert kind == "snapshot"
            assert [s["session_id"] for s in snapshot["sessions"]] == ["c1-0001"]
            kind, snapshot = await next_event(everyone)
            assert [s["session_id"] for s in snapshot["sessions"]] == ["c1-0001", "c2-0001"]
            session = snapshot["sessions"][0]
            assert set(session["roles"]) >= {"therapist", "client"}
            assert 0 <= session["roles"]["therapist"]["talk_share"] <= 1
            assert session["balance_index"] is not None and session["updates"] == 1

            hub.apply(of(c2, "quality")[1])  # another clinic: not for c1
            last = of(c1, "quality")[-1]
            hub.apply(last)
            hub.apply(alert_record("c1-0001", "c1", "therapist_dominance", 90_000,
                                   therapist_share=0.81))
            hub.apply(of(c1, "report")[0])
            seen = [await next_event(clinic) for _ in range(3)]
            assert [k for k, _ in seen] == ["session", "session", "ended"]
            assert all(d["session_id"] == "c1-0001" for _, d in seen)
            assert seen[0][1]["event_time_ms"] == last["event_time_ms"]
            assert seen[0][1]["updates"] == 2
            alerts = seen[1][1]["alerts"]
            assert alerts[0]["alert"] == "therapist_dominance" and not alerts[0]["cleared"]
            assert seen[1][1]["active_alerts"] == ["therapist_dominance"]
            assert seen[2][1]["reason"] == "report"
            admin_seen = [await next_event(everyone) for _ in range(4)]
            assert [d["session_id"] for _, d in admin_seen] == ["c2-0001"] + ["c1-0001"] * 3
            assert [s["session_id"] for s in hub.sessions(None)] == ["c2-0001"]

    asyncio.run(scenario())


def test_streams_need_a_reports_token_and_the_page_stream_takes_the_cookie(
        store: ReportStore) -> None:
    ingest, _ = store.create_token("c1", "ingest")
    own, _ = store.create_token("c1", "reports")

    async def scenario() -> None:
        async with served(store, LiveHub()) as client:
            for path in ("/v1/live", "/live/events", "/live"):
                refused = await client.get(path)
                assert refused.status == 401, path
                assert (await client.get(path, headers=bearer(ingest))).status == 403, path
                assert (await client.get(path, headers=bearer("rpt_nope"))).status == 401
            signed = await client.post("/signin", data={"token": own, "next": "/live"},
                                       allow_redirects=False)
            assert signed.status == 303
            assert (await client.get("/v1/live")).status == 401  # the API ignores cookies
            stream = await client.get("/live/events")  # the page's stream takes it
            assert stream.status == 200
            assert (await next_event(stream))[0] == "snapshot"
            stream.close()

    asyncio.run(scenario())


def test_no_participant_id_leaves_the_hub(
        store: ReportStore, records: dict[str, list[dict[str, Any]]]) -> None:
    c1 = records["c1"]
    quality = of(c1, "quality")[-1]
    ids = set(quality["snapshot"]["quality"]["participants"])
    assert ids
    hub = LiveHub(hide=store.pseudonymize.apply)
    hub.apply(quality)
    victim = sorted(ids)[0]
    hub.apply(alert_record("c1-0001", "c1", "network_degraded", 5_000, participant_id=victim,
                           rtt_p95_ms=420.0))
    sent = orjson.dumps(hub.sessions(None))
    for pid in ids:
        assert pid.encode() not in sent
    shown = hub.sessions("c1")[0]["alerts"][0]
    assert shown["participant_id"] == store.pseudonymize(victim)


def test_idle_sessions_expire_and_slow_subscribers_are_dropped(
        records: dict[str, list[dict[str, Any]]]) -> None:
    now = [100.0]
    hub = LiveHub(idle_timeout_s=60, queue_limit=3, clock=lambda: now[0])
    updates = of(records["c1"], "quality")

    async def scenario() -> None:
        with hub.subscribe(None) as slow, hub.subscribe("c2") as other:
            hub.apply(updates[0])
            now[0] += 59
            assert hub.expire() == 0
            hub.apply(updates[1])  # seen again: the idle clock restarts
            now[0] += 59
            assert hub.expire() == 0
            now[0] += 2
            assert hub.expire() == 1 and hub.sessions(None) == []
            got = [await slow.get() for _ in range(3)]
            assert [e.kind for e in got if e] == ["session", "session", "ended"]
            assert got[-1] is not None and got[-1].data["reason"] == "idle"
            for update in updates[:4]:
                hub.apply(update)
            assert slow.dropped and hub.subscribers == 1  # 4 behind: dropped
            assert [await slow.get() for _ in range(4)][-1] is None  # the stream ends
            assert not other.dropped and other._queue.empty()  # c1's updates: not for c2

    asyncio.run(scenario())


def test_the_page_lists_active_sessions_and_allows_only_its_script(
        store: ReportStore, records: dict[str, list[dict[str, Any]]]) -> None:
    own, _ = store.create_token("c1", "reports")
    hub = LiveHub(feed="127.0.0.1:9092")
    hub.apply(of(records["c1"], "quality")[-1])
    hub.apply(of(records["c2"], "quality")[-1])
    hub.apply(alert_record("c1-0001", "c1", "long_silence", 5_000))
    hub.apply(alert_record("c1-0001", "c1", "long_silence.cleared", 9_000))

    async def scenario() -> None:
        async with served(store, hub, keepalive_s=0.2) as client:
            page = await client.get("/live", headers=bearer(own))
            text = await page.text()
            assert page.status == 200
            assert 'data-session="c1-0001"' in text and "c2-0001" not in text
            assert 'id="live" data-admin="0" data-updates="0"' in text
            assert "long silence cleared" in text and "No session is in progress" in text
            digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
            csp = page.headers["Content-Security-Policy"]
            assert csp == LIVE_CSP and f"script-src 'sha256-{digest}'" in csp
            assert "default-src 'none'" in csp and "connect-src 'self'" in csp
            scripts = re.findall(r"<script>(.*?)</script>", text, re.S)
            assert scripts == [SCRIPT] and "EventSource(\"/live/events\")" in SCRIPT
            assert "innerHTML" not in SCRIPT and "http" not in SCRIPT  # no markup, no CDN
            stream = await client.get("/v1/live", headers=bearer(own))
            assert (await next_event(stream))[0] == "snapshot"
            body = await asyncio.wait_for(stream.content.readline(), 2)
            assert body == b": keepalive\n"  # a quiet stream still speaks
            hub.close()  # server shutdown: the stream ends
            rest = await asyncio.wait_for(stream.content.read(), 2)
            assert b"event:" not in rest

    asyncio.run(scenario())


def test_updates_read_after_the_report_do_not_bring_a_session_back(
        records: dict[str, list[dict[str, Any]]]) -> None:
    hub = LiveHub()
    updates, report = of(records["c1"], "quality"), of(records["c1"], "report")[0]
    hub.apply(updates[0])
    assert hub.apply(report) and hub.sessions("c1") == []
    assert not hub.apply(updates[-1])  # the topics are not ordered with each other
    assert hub.sessions("c1") == []


def test_revoking_a_token_ends_its_open_live_stream(store: ReportStore) -> None:
    """Issue 16 finding 3: a revoked token's live stream kept delivering."""
    token, info = store.create_token("c1", "reports")
    other, _ = store.create_token("c1", "reports")

    async def scenario() -> None:
        # keepalive comments (skipped by next_event) must not come within the 0.8 s below,
        # or next_event(kept) would never time out
        async with served(store, LiveHub(), keepalive_s=5.0, revalidate_s=0.2) as client:
            revoked = await client.get("/v1/live", headers=bearer(token))
            kept = await client.get("/v1/live", headers=bearer(other))
            assert (await next_event(revoked))[0] == "snapshot"
            assert (await next_event(kept))[0] == "snapshot"
            store.revoke_token(info.id)
            kind, data = await next_event(revoked, timeout=3.0)
            assert kind == "revoked" and "revoked" in data["error"]
            assert await asyncio.wait_for(revoked.content.read(), 3.0) == b""  # it ended
            with pytest.raises(asyncio.TimeoutError):  # the other token's stream stays open
                await next_event(kept, timeout=0.8)
            assert not kept.content.at_eof()
            kept.close()
            revoked.close()

    asyncio.run(scenario())


async def next_id(response: ClientResponse, timeout: float = 5.0) -> tuple[str, int]:
    """The next event of an SSE stream as (event name, its ``id:``); comments skipped."""
    kind, ident = "message", -1
    while True:
        line = (await asyncio.wait_for(response.content.readline(), timeout)).rstrip(b"\r\n")
        if not line and ident >= 0:
            return kind, ident
        name, _, value = line.partition(b": ")
        if name == b"event":
            kind = value.decode()
        elif name == b"id":
            ident = int(value)


def test_a_clinic_sees_consecutive_ids_while_other_clinics_are_busy(
        store: ReportStore, records: dict[str, list[dict[str, Any]]]) -> None:
    """Issue 16 finding 9: one hub-wide counter made clinic B's ids skip A's activity."""
    c1, c2 = of(records["c1"], "quality"), of(records["c2"], "quality")
    own, _ = store.create_token("c1", "reports")
    admin, _ = store.create_token("ops", "admin")

    async def scenario() -> None:
        hub = LiveHub(hide=store.pseudonymize.apply)
        async with served(store, hub) as client:
            clinic = await client.get("/v1/live", headers=bearer(own))
            everyone = await client.get("/v1/live", headers=bearer(admin))
            assert await next_id(clinic) == ("snapshot", 0)
            assert await next_id(everyone) == ("snapshot", 0)
            for k in range(3):  # c2 is busier than c1
                hub.apply(c2[2 * k])
                hub.apply(c2[2 * k + 1])
                hub.apply(c1[k])
            assert [await next_id(clinic) for _ in range(3)] == [("session", 1),
                                                                 ("session", 2),
                                                                 ("session", 3)]
            assert [i for _, i in [await next_id(everyone) for _ in range(9)]] == list(
                range(1, 10))
            # a reconnection (Last-Event-ID) starts again from a snapshot with id 0
            again = await client.get("/v1/live", headers={**bearer(own),
                                                          "Last-Event-ID": "3"})
            assert await next_id(again) == ("snapshot", 0)

    asyncio.run(scenario())


def test_live_views_are_for_supervisors_not_therapists(store: ReportStore) -> None:
    """Issue 19: a therapist token is refused the live views (a live session names no stored
    therapist, so they could not be scoped to its own); a clinic-admin reads them."""
    therapist, _ = store.create_token("c1", "therapist", participant_id="t1")
    supervisor, _ = store.create_token("c1", "clinic-admin")

    async def scenario() -> None:
        async with served(store, LiveHub()) as client:
            for path in ("/v1/live", "/live/events", "/live"):
                assert (await client.get(path, headers=bearer(therapist))).status == 403, path
            assert (await client.get("/live", headers=bearer(supervisor))).status == 200
            stream = await client.get("/v1/live", headers=bearer(supervisor))
            assert stream.status == 200
            assert (await next_event(stream))[0] == "snapshot"
            stream.close()

    asyncio.run(scenario())


def test_head_of_a_stream_answers_its_headers_and_nothing_else(store: ReportStore) -> None:
    """HEAD /v1/live and /live/events (aiohttp adds HEAD to every GET route) answered the
    stream's bytes after the headers, which a kept-alive connection then read as the next
    answer. Now: headers only, and the next request on the same socket gets its own answer."""
    token, _ = store.create_token("c1", "reports")

    async def scenario() -> None:
        async with served(store, LiveHub()) as client:
            for path in ("/v1/live", "/live/events"):
                reader, writer = await asyncio.open_connection(client.host, client.port)
                writer.write(f"HEAD {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                             f"{token}\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n"
                             "Connection: close\r\n\r\n".encode())
                await writer.drain()
                answer = await asyncio.wait_for(reader.read(), 10)
                writer.close()
                head, _, rest = answer.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head, head
                assert rest.startswith(b"HTTP/1.1 "), (path, rest[:80])  # no stream bytes

    asyncio.run(scenario())
