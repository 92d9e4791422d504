"""Every read writes an audit entry (issue 19, point 6, acceptance): a walk over EVERY route of
the full application (services/web.py ``build_app``, as ``rapport run --port`` serves it:
report API and pages, live dashboard, coach stream, ingest, health).

Each route that needs a ``reports``, ``admin``, ``clinic-admin`` or ``therapist`` token
(services/reports/audit_log.py ``is_audited``) is called with a valid token of an allowed
scope and valid parameters, and must write exactly one entry naming its route; the same
route called without a token, with a token of a scope it refuses and with another clinic's
token writes one entry only when it answers below 400. The routes come from
``app.router.routes()``, so a route added later is walked too: one whose parameters this test
cannot fill fails, naming the route, until a filler is added to :data:`PATH_FILLERS` or
:data:`BODIES`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from reportkit import KEY, quality_record, report_record
from sqlalchemy import text

from services.auth import Access
from services.ingest import IngestConfig, MemoryPublisher
from services.reports import LiveHub
from services.reports.audit_log import is_audited
from services.store import ReportStore, StoreError
from services.web import JobHealth, build_app

Client = TestClient[Any, Any]
CLINIC = "c1"
# Scopes tried in this order: the narrowest token a route accepts.
SCOPE_ORDER = ("reports", "clinic-admin", "therapist", "admin")
WRONG_SCOPE = "ingest"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


@dataclass(frozen=True)
class Call:
    """One route (method + canonical path) and the access it declares."""

    method: str
    canonical: str
    access: Access

    @property
    def name(self) -> str:
        return f"{self.method} {self.canonical}"


def routes_of(app: web.Application) -> list[Call]:
    calls = []
    for route in app.router.routes():
        if route.resource is None:
            continue
        declared = getattr(route.handler, "_rapport_access", None)
        access = declared if isinstance(declared, Access) else Access(None)
        calls.append(Call(route.method, route.resource.canonical, access))
    return calls


def path_fillers(store: ReportStore) -> dict[tuple[str, str], str]:
    """(method or *, parameter) -> value. Erasures get participants of their own sessions so
    the reads before them still find s1."""
    return {
        ("*", "session_id"): "s1",
        ("*", "therapist_id"): store.pseudonymize("t1"),
        ("*", "participant_id"): "p1",
        ("DELETE", "participant_id"): "p2",  # DELETE /v1/clients/...: a client of s2
        ("DELETE /v1/therapists/{participant_id}", "participant_id"): "t3",
        ("DELETE /v1/directory/{participant_id}", "participant_id"): "p4",
    }


# Routes that erase: the store appends the erasure's own record besides the request's entry.
ERASURES = frozenset({"DELETE /v1/clients/{participant_id}",
                      "DELETE /v1/therapists/{participant_id}"})


@dataclass(frozen=True)
class Form:
    """A form body (``application/x-www-form-urlencoded``), as a page's form posts it."""

    fields: tuple[tuple[str, str], ...]


# Bodies of routes that change something (other helpers' routes; add one per new route).
BODIES: dict[str, Any] = {
    "PUT /v1/directory/{participant_id}": {"role": "client", "label": "Client One"},
    "PUT /v1/clients/{participant_id}/consent": {"analysis": True},
    "PUT /v1/clinic/policy": {"retention_days": 400},
    "DELETE /v1/clients/{participant_id}": None,
    "DELETE /v1/therapists/{participant_id}": None,
    "DELETE /v1/directory/{participant_id}": None,
    "POST /directory": Form((("action", "label"), ("participant_id", "p5"),
                             ("role", "client"), ("label", "Client Five"))),
}


def fill(call: Call, store: ReportStore) -> str:
    fillers = path_fillers(store)
    path = call.canonical
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        name = path[start + 1:end].split(":")[0]
        value = (fillers.get((call.name, name)) or fillers.get((call.method, name))
                 or fillers.get(("*", name)))
        if value is None:
            pytest.fail(f"{call.name}: no filler for path parameter {name!r}; add one to "
                        "tests/component/test_audit_walk.py PATH_FILLERS")
        path = path[:start] + value + path[end + 1:]
    return path


def audit_count(store: ReportStore) -> int:
    with store.db.transaction("count") as session:
        return int(session.execute(text("SELECT count(*) FROM audit_log")).scalar_one())


def last_entry(store: ReportStore) -> dict[str, Any]:
    with store.db.transaction("last") as session:
        row = session.execute(text(
            "SELECT clinic_id, token_id, scope, action, target, detail FROM audit_log "
            "ORDER BY id DESC LIMIT 1")).one()
    detail = row.detail if isinstance(row.detail, dict) else orjson.loads(row.detail)
    return {"clinic_id": row.clinic_id, "token_id": row.token_id, "scope": row.scope,
            "action": row.action, "target": row.target, "detail": detail}


@pytest.fixture
def store(tmp_path: Path) -> ReportStore:
    opened = ReportStore(f"sqlite:///{tmp_path / 'reports.db'}", KEY)
    opened.save_report(report_record("s1", CLINIC, therapist="t1", client="p1"))
    opened.save_report(report_record("s2", CLINIC, therapist="t1", client="p2"))
    opened.save_report(report_record("s3", CLINIC, therapist="t3", client="p3"))
    opened.add_timeline(quality_record("s1", CLINIC, []))
    # the clinic's records the directory and consent routes read and remove
    opened.set_consent(CLINIC, "p1", True, by="seed")
    opened.set_label(CLINIC, "p4", "client", "Client Four", by="seed")
    return opened


@asynccontextmanager
async def served(store: ReportStore) -> AsyncIterator[tuple[Client, web.Application]]:
    hub = LiveHub(hide=store.pseudonymize.apply)
    app = build_app(store, MemoryPublisher(), JobHealth(store, []), live=hub,
                    ingest=IngestConfig(coach=True))
    client: Client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, app
    finally:
        await client.close()


async def call(client: Client, method: str, path: str, token: str | None,
               body: Any = None, params: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Status and (for non-streams) body; a stream (SSE) is left after its headers."""
    if method == "HEAD":
        return await raw_head(client, path, token, params or {}), b""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # A fresh connection each time: a stream left open (or a HEAD answered with a stream's
    # bytes) must not be read as the next answer.
    headers["Connection"] = "close"
    kwargs: dict[str, Any] = {"headers": headers, "params": params or {},
                              "allow_redirects": False}
    if isinstance(body, Form):  # an HTML form (page routes)
        kwargs["data"] = dict(body.fields)
    elif body is not None:
        kwargs["json"] = body
    async with client.request(method, path, **kwargs) as reply:
        if reply.content_type == "text/event-stream":
            return reply.status, b""
        return reply.status, await reply.read()


async def raw_head(client: Client, path: str, token: str | None,
                   params: dict[str, str]) -> int:
    """HEAD on a socket of its own, read up to the status line (only the status matters;
    tests/component/test_live_dashboard.py checks that a stream's HEAD sends no body)."""
    query = ("?" + "&".join(f"{k}={v}" for k, v in params.items())) if params else ""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(f"HEAD {path}{query} HTTP/1.1\r\nHost: {client.host}\r\n{auth}"
                 "Connection: close\r\n\r\n".encode())
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    return int(status_line.split()[1])


def test_every_audited_route_writes_one_entry_and_failures_write_none(
        store: ReportStore) -> None:
    tokens = {scope: store.create_token(CLINIC, scope,
                                        "t1" if scope == "therapist" else None)
              for scope in ("reports", "clinic-admin", "therapist", WRONG_SCOPE)}
    tokens["admin"] = store.create_token("ops", "admin")
    other_clinic = {scope: store.create_token("c2", scope,
                                              "t1" if scope == "therapist" else None)[0]
                    for scope in ("reports", "clinic-admin", "therapist")}

    async def scenario() -> None:
        async with served(store) as (client, app):
            calls = routes_of(app)
            audited = [c for c in calls if is_audited(c.access)]
            # Not vacuous: the report API, pages, live routes and the audit log are walked.
            names = {c.name for c in audited}
            for expected in ("GET /v1/sessions", "GET /v1/sessions/{session_id}/report",
                             "GET /sessions/{session_id}", "GET /v1/live", "GET /live/events",
                             "GET /v1/audit", "GET /audit"):
                assert expected in names, sorted(names)
            # Changes and erasures last, so the reads before them find their data.
            audited.sort(key=lambda c: (c.method == "DELETE", c.method not in ("GET", "HEAD")))
            refusals = 0
            for route in audited:
                assert route.access.scopes is not None
                scope = next(s for s in SCOPE_ORDER if s in route.access.scopes)
                token, info = tokens[scope]
                path = fill(route, store)
                params = {"clinic": CLINIC} if scope == "admin" else {}
                body = None
                if route.method not in ("GET", "HEAD"):
                    if route.name not in BODIES:
                        pytest.fail(f"{route.name}: no request body filler; add one to "
                                    "tests/component/test_audit_walk.py BODIES")
                    body = BODIES[route.name]

                # Refused first (nothing may be written), then the valid call.
                failures: list[tuple[str | None, str]] = [
                    (None, "no token"), ("rpt_unknown", "unknown token")]
                if WRONG_SCOPE not in route.access.scopes:
                    failures.append((tokens[WRONG_SCOPE][0], "wrong scope"))
                if scope in other_clinic and "{" in route.canonical:
                    failures.append((other_clinic[scope], "another clinic"))
                for bad, why in failures:
                    before = audit_count(store)
                    status, answer = await call(client, route.method, path, bad, body, params)
                    written = audit_count(store) - before
                    assert written == (1 if status < 400 else 0), (route.name, why, status)
                    if status >= 400:
                        refusals += 1
                        if why == "another clinic":
                            assert status == 404, (route.name, status, answer[:200])

                before = audit_count(store)
                status, answer = await call(client, route.method, path, token, body, params)
                if status == 400:
                    pytest.fail(f"{route.name}: 400 with a {scope} token at {path} "
                                f"{params}: {answer[:300]!r}; add a parameter filler")
                assert status < 400, (route.name, scope, status, answer[:300])
                # an erasure also appends its own record (receipt and counts; erasure.py)
                expected = 2 if route.name in ERASURES else 1
                assert audit_count(store) - before == expected, route.name
                entry = last_entry(store)
                verb = {"GET": "read", "HEAD": "read", "DELETE": "erase"}.get(route.method,
                                                                              "change")
                assert entry["action"] == f"{verb} {route.name}"[:64], entry
                assert entry["detail"]["route"] == route.name
                assert entry["detail"]["status"] == status
                assert (entry["token_id"], entry["scope"], entry["clinic_id"]) == (
                    info.id, scope, CLINIC), (route.name, entry)
                assert token not in str(entry)
                # A participant is named only by pseudonym, and only in the target.
                for pid in ("p1", "p2", "t3"):
                    assert f"/{pid}" not in entry["target"], entry
                    assert store.pseudonymize(pid) not in orjson.dumps(entry["detail"]).decode()
            assert refusals >= 3 * len(audited)

            # Routes that carry a platform's events or need no token are not audited.
            before = audit_count(store)
            for route in (c for c in calls if not is_audited(c.access)):
                if route.method == "GET" and "{" not in route.canonical \
                        and route.canonical not in ("/v1/stream", "/join"):
                    await call(client, "GET", route.canonical, tokens["reports"][0])
            assert audit_count(store) == before

    run(scenario())


def test_the_target_names_filters_and_pseudonyms_not_participant_ids(
        store: ReportStore) -> None:
    admin, info = store.create_token("ops", "admin")

    async def scenario() -> None:
        async with served(store) as (client, _):
            therapist = store.pseudonymize("t1")
            status, _ = await call(client, "GET", "/v1/sessions", admin,
                                   params={"therapist": therapist, "from": "2026-01-01",
                                           "limit": "5"})
            assert status == 200
            entry = last_entry(store)
            # An admin listing every clinic touches "*"; limit is paging, not a filter.
            assert entry["clinic_id"] == "*"
            assert entry["target"] == f"/v1/sessions?from=2026-01-01&therapist={therapist}"
            assert entry["detail"] == {"method": "GET", "status": 200, "format": "json",
                                       "route": "GET /v1/sessions"}
            # An admin reading one session without naming the clinic: the session's clinic.
            status, _ = await call(client, "GET", "/v1/sessions/s1/report", admin)
            assert status == 200
            assert last_entry(store)["clinic_id"] == CLINIC
            status, _ = await call(client, "GET", "/v1/sessions.csv", admin,
                                   params={"clinic": CLINIC})
            assert status == 200
            entry = last_entry(store)
            assert (entry["clinic_id"], entry["detail"]["format"]) == (CLINIC, "csv")
            assert entry["token_id"] == info.id

    run(scenario())


def test_a_failing_audit_write_fails_the_request(store: ReportStore,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    reports, _ = store.create_token(CLINIC, "reports")

    def broken(_record: object) -> None:
        raise StoreError("audit: disk full")

    async def scenario() -> None:
        async with served(store) as (client, _):
            monkeypatch.setattr(store, "audit", broken)
            for path in ("/v1/sessions", "/v1/sessions/s1/report", "/sessions"):
                status, answer = await call(client, "GET", path, reports)
                assert status == 503, (path, status)
                assert b"therapist_talk_share" not in answer
            # A stream cannot turn into a 503 once its headers are prepared: it is cut
            # before its first byte.
            with pytest.raises(aiohttp.ClientError):
                await call(client, "GET", "/v1/live", reports)
            monkeypatch.undo()
            status, _ = await call(client, "GET", "/v1/sessions", reports)
            assert status == 200

    run(scenario())


def test_the_clinic_routes_are_audited_and_an_erasure_does_not_name_whom_it_erased(
        store: ReportStore) -> None:
    """The clinic's records routes (issue 19 points 1, 4, 5; services/reports/governance.py)
    have nothing audit-specific in them but each writes its entry; an erasure's entry and a
    consent revocation's (its handler records the erased pseudonym) say ``erased``, and no
    entry names the erased client afterwards."""
    from services.reports import create_app

    clinic_admin, info = store.create_token(CLINIC, "clinic-admin")
    store.save_report(report_record("s9", CLINIC, therapist="t9", client="p1"))
    store.save_report(report_record("s8", CLINIC, therapist="t9", client="p7"))

    async def scenario() -> None:
        client: Client = TestClient(TestServer(create_app(store)))
        await client.start_server()
        try:
            pseudonym = store.pseudonymize("p1")
            expected = [
                ("PUT", "/v1/directory/p1", {"role": "client", "label": "Client One"},
                 "change PUT /v1/directory/{participant_id}", f"/v1/directory/{pseudonym}"),
                ("PUT", "/v1/clients/p1/consent", {"analysis": False},
                 "change PUT /v1/clients/{participant_id}/consent",
                 "/v1/clients/erased/consent"),
                ("DELETE", "/v1/clients/p7", None,
                 "erase DELETE /v1/clients/{participant_id}", "/v1/clients/erased"),
            ]
            for method, path, body, action, target in expected:
                status, _ = await call(client, method, path, clinic_admin, body)
                assert status < 400, (method, path, status)
                entry = last_entry(store)
                assert (entry["action"], entry["target"], entry["token_id"]) == (
                    action, target, info.id)
            with store.db.transaction("dump") as session:
                log = str(session.execute(text("SELECT * FROM audit_log")).all())
            assert pseudonym not in log and store.pseudonymize("p7") not in log
        finally:
            await client.close()

    run(scenario())
