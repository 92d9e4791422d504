"""Directory, consent, policy and erasure over HTTP (issue 19, points 1, 4 and 5) on SQLite and
PostgreSQL: what a clinic admin does, bad bodies naming the field, and tenancy for every route
(another clinic's admin: 404; no token: 401; a scope that does not administer: 403)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from reportkit import BACKENDS, Api, Reply, api, open_store, report_record

from services.store import ReportStore

CLIENT, THERAPIST = "client-ann-7781", "therapist-lee-3301"


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReportStore]:
    with open_store(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture
def client(store: ReportStore) -> Iterator[Api]:
    with api(store) as opened:
        yield opened


def put(client: Api, path: str, token: str | None, body: object, **params: str) -> Reply:
    return client.request("PUT", path, token=token, params=params,
                          data=body if isinstance(body, bytes) else orjson.dumps(body),
                          headers={"Content-Type": "application/json"})


def test_directory_set_list_replace_delete(store: ReportStore, client: Api) -> None:
    admin, _ = store.create_token("c1", "clinic-admin")
    reply = put(client, f"/v1/directory/{THERAPIST}", admin,
                {"role": "therapist", "label": "Dr. Lee"})
    assert reply.status == 201, reply.text
    lee = store.pseudonymize(THERAPIST)
    assert {k: reply.json()[k] for k in ("pseudonym", "role", "label")} == {
        "pseudonym": lee, "role": "therapist", "label": "Dr. Lee"}
    assert THERAPIST not in reply.text
    reply = put(client, f"/v1/directory/{THERAPIST}", admin,
                {"role": "therapist", "label": "Dr. Lee-Smith"})
    assert reply.status == 200 and reply.json()["label"] == "Dr. Lee-Smith"
    put(client, f"/v1/directory/{CLIENT}", admin, {"role": "client", "label": "A. N."})
    listed = client.get("/v1/directory", admin).json()
    assert [(e["role"], e["label"]) for e in listed["entries"]] == [
        ("therapist", "Dr. Lee-Smith"), ("client", "A. N.")]
    assert client.request("DELETE", f"/v1/directory/{CLIENT}", token=admin).status == 204
    assert client.request("DELETE", f"/v1/directory/{CLIENT}", token=admin).status == 404
    assert client.get("/v1/directory", admin).json()["count"] == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"role": "nurse", "label": "X"}, "role"),
    ({"label": "X"}, "role"),
    ({"role": "client"}, "label"),
    ({"role": "client", "label": ""}, "label"),
    ({"role": "client", "label": "x" * 201}, "label"),
    ({"role": "client", "label": 5}, "label"),
    ({"role": "client", "label": "X", "email": "a@b"}, "email"),
    (["role", "client"], "body"),
    (b"{not json", "body"),
])
def test_directory_bad_bodies_name_the_field(store: ReportStore, client: Api, body: object,
                                             field: str) -> None:
    admin, _ = store.create_token("c1", "clinic-admin")
    reply = put(client, f"/v1/directory/{CLIENT}", admin, body)
    assert reply.status == 400 and reply.json()["field"] == field, reply.text
    assert store.list_labels("c1") == []


def test_consent_recorded_and_revocation_erases(store: ReportStore, client: Api) -> None:
    admin, info = store.create_token("c1", "clinic-admin")
    path = f"/v1/clients/{CLIENT}/consent"
    assert client.get(path, admin).status == 404
    reply = put(client, path, admin, {"analysis": True})
    assert reply.status == 200, reply.text
    assert (reply.json()["analysis"], reply.json()["recorded_by"]) == (True, info.id)
    assert reply.json()["erasure"] is None
    assert reply.json()["recorded_at"].endswith("Z")  # RFC 3339 UTC on both backends
    assert client.get(path, admin).json()["analysis"] is True
    store.save_report(report_record("s1", "c1", therapist=THERAPIST, client=CLIENT))
    reply = put(client, path, admin, {"analysis": False})
    assert reply.json()["erasure"]["counts"]["sessions"] == 1
    assert store.get_report("s1", "c1") is None
    assert client.get(path, admin).json()["analysis"] is False
    for bad in ({"analysis": "yes"}, {}, {"analysis": True, "x": 1}):
        assert put(client, path, admin, bad).status == 400


def test_policy_partial_updates(store: ReportStore, client: Api) -> None:
    admin, info = store.create_token("c1", "clinic-admin")
    assert client.get("/v1/clinic/policy", admin).json()["explicit"] is False
    reply = put(client, "/v1/clinic/policy", admin, {"require_consent": True})
    assert reply.status == 200, reply.text
    body = reply.json()
    assert (body["require_consent"], body["retention_days"], body["updated_by"]) == (
        True, 365, info.id)
    body = put(client, "/v1/clinic/policy", admin, {"retention_days": 30}).json()
    assert (body["require_consent"], body["retention_days"]) == (True, 30)
    for bad, field in (({"retention_days": 0}, "retention_days"),
                       ({"retention_days": "30"}, "retention_days"),
                       ({"require_consent": 1}, "require_consent"),
                       ({"keep": 1}, "keep")):
        reply = put(client, "/v1/clinic/policy", admin, bad)
        assert reply.status == 400 and reply.json()["field"] == field
    assert store.get_policy("c2").require_consent is False


def test_erasure_over_http(store: ReportStore, client: Api) -> None:
    admin, _ = store.create_token("c1", "clinic-admin")
    store.save_report(report_record("s1", "c1", therapist=THERAPIST, client=CLIENT))
    store.save_report(report_record("s2", "c1", therapist=THERAPIST, client="someone-else"))
    reply = client.request("DELETE", f"/v1/clients/{CLIENT}", token=admin)
    assert reply.status == 200, reply.text
    assert reply.json()["counts"]["sessions"] == 1
    assert reply.json()["receipt"].startswith("erasure-")
    assert client.request("DELETE", f"/v1/clients/{CLIENT}", token=admin).status == 404
    reply = client.request("DELETE", f"/v1/therapists/{THERAPIST}", token=admin)
    assert reply.status == 200 and reply.json()["counts"]["sessions"] == 1
    assert store.get_report("s2", "c1") is None


ROUTES = [
    ("GET", "/v1/directory", None),
    ("PUT", f"/v1/directory/{CLIENT}", {"role": "client", "label": "A"}),
    ("DELETE", f"/v1/directory/{CLIENT}", None),
    ("GET", f"/v1/clients/{CLIENT}/consent", None),
    ("PUT", f"/v1/clients/{CLIENT}/consent", {"analysis": True}),
    ("GET", "/v1/clinic/policy", None),
    ("PUT", "/v1/clinic/policy", {"retention_days": 30}),
    ("DELETE", f"/v1/clients/{CLIENT}", None),
    ("DELETE", f"/v1/therapists/{THERAPIST}", None),
]


def _call(client: Api, method: str, path: str, token: str | None, body: object,
          **params: str) -> Reply:
    data = None if body is None else orjson.dumps(body)
    return client.request(method, path, token=token, params=params, data=data)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_tenancy_of_every_route(store: ReportStore, client: Api, method: str, path: str,
                                body: object) -> None:
    # c1 holds a client and a therapist with everything; c2's admin must learn nothing of them
    store.save_report(report_record("s1", "c1", therapist=THERAPIST, client=CLIENT))
    store.set_label("c1", CLIENT, "client", "Ann", by="t")
    store.set_consent("c1", CLIENT, True, by="t")
    assert _call(client, method, path, None, body).status == 401
    for scope in ("reports", "ingest", "therapist"):
        token, _ = store.create_token("c1", scope, participant_id=THERAPIST
                                      if scope == "therapist" else None)
        assert _call(client, method, path, token, body).status == 403, scope
    other, _ = store.create_token("c2", "clinic-admin")
    reply = _call(client, method, path, other, body)
    if method == "GET" and path == "/v1/directory":
        assert reply.json()["entries"] == []
    elif path == "/v1/clinic/policy" or method == "PUT":
        assert reply.status in (200, 201)  # writes c2's own record, reads nothing of c1
        assert "Ann" not in reply.text
    else:
        assert reply.status == 404, reply.text
    assert store.get_report("s1", "c1") is not None
    assert store.labels_for("c1") == {store.pseudonymize(CLIENT): "Ann"}
    # a clinic-admin cannot choose another clinic; an admin must name one
    assert _call(client, method, path, other, body, clinic="c1").status == 403
    root, _ = store.create_token("c0", "admin")
    reply = _call(client, method, path, root, body)
    assert reply.status == 400 and reply.json()["field"] == "clinic"
    assert _call(client, method, path, root, body, clinic="c1").status in (200, 201, 204)


def test_labels_and_participant_ids_never_reach_the_logs(
        store: ReportStore, caplog: pytest.LogCaptureFixture) -> None:
    """Handlers log pseudonyms only; the access log (as ``rapport reports`` serves it,
    services/reports/access_log.py) names routes, not paths holding participant ids."""
    import asyncio
    import logging

    from aiohttp.test_utils import TestClient, TestServer

    from services.reports import create_app
    from services.reports.access_log import RouteAccessLogger

    admin, _ = store.create_token("c1", "clinic-admin")
    headers = {"Authorization": f"Bearer {admin}"}

    async def scenario() -> None:
        server = TestServer(create_app(store))
        await server.start_server(access_log_class=RouteAccessLogger,
                                  access_log=logging.getLogger("services.cli.reports"))
        async with TestClient(server) as http:
            reply = await http.put(f"/v1/directory/{THERAPIST}", headers=headers,
                                   json={"role": "therapist", "label": "Dr. Secret Name"})
            assert reply.status == 201
            await http.get("/v1/directory", headers=headers)
            await http.get("/directory", headers=headers)
            await http.delete(f"/v1/directory/{THERAPIST}", headers=headers)

    with caplog.at_level(logging.DEBUG):
        asyncio.run(scenario())
    assert store.pseudonymize(THERAPIST) in caplog.text  # it does log, by pseudonym
    assert "PUT /v1/directory/{participant_id} 201" in caplog.text
    assert "Secret" not in caplog.text and THERAPIST not in caplog.text
