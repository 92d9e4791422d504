"""``/directory`` (issue 19): the clinic admin's page lists its labels, consent records and
policy and changes them by same-site forms, on SQLite and PostgreSQL; other clinics and other
scopes see nothing of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from reportkit import BACKENDS, Api, Reply, api, open_store, report_record

from services.store import ReportStore


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReportStore]:
    with open_store(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture
def client(store: ReportStore) -> Iterator[Api]:
    with api(store) as opened:
        yield opened


def post(client: Api, token: str, origin: str | None = None, **form: str) -> Reply:
    headers = {"Origin": origin} if origin else {}
    return client.request("POST", "/directory", token=token, data=form, headers=headers,
                          allow_redirects=False)


def test_the_page_shows_and_changes_the_clinics_records(store: ReportStore,
                                                        client: Api) -> None:
    admin, _ = store.create_token("c1", "clinic-admin")
    own = f"http://{client.host}"
    reply = post(client, admin, own, action="label", participant_id="lee", role="therapist",
                 label="Dr. <Lee>")
    assert reply.status == 303 and reply.headers["Location"] == "/directory?done=label"
    assert store.labels_for("c1") == {store.pseudonymize("lee"): "Dr. <Lee>"}
    post(client, admin, own, action="label", participant_id="ann", role="client", label="Ann")
    post(client, admin, own, action="consent", participant_id="ann", analysis="yes")
    post(client, admin, own, action="policy", retention_days="90",
         audit_retention_days="2192", require_consent="yes")
    page = client.get("/directory?done=consent", admin)
    assert page.status == 200
    assert "Dr. &lt;Lee&gt;" in page.text and "Dr. <Lee>" not in page.text
    assert "Consent recorded." in page.text and 'value="90"' in page.text
    assert store.get_policy("c1").require_consent is True
    # revoking consent erases the client's sessions and shows the receipt
    store.save_report(report_record("s1", "c1", therapist="lee", client="ann"))
    reply = post(client, admin, own, action="consent", participant_id="ann", analysis="no")
    assert reply.status == 303 and "receipt=erasure-" in reply.headers["Location"]
    assert store.get_report("s1", "c1") is None
    assert len(store.list_labels("c1")) == 1  # her label went with her data
    assert "Erasure receipt: erasure-" in client.get(reply.headers["Location"], admin).text
    # nothing from the URL is echoed
    assert "pwned" not in client.get("/directory?done=pwned", admin).text
    # a form from another site is refused and changes nothing
    reply = post(client, admin, "https://evil.example", action="label", participant_id="x",
                 role="client", label="X")
    assert reply.status == 403 and len(store.list_labels("c1")) == 1
    assert post(client, admin, own, action="label", participant_id="x", role="nurse",
                label="X").status == 400
    post(client, admin, own, action="remove", participant_id="lee")
    assert store.list_labels("c1") == []


def test_tenancy_of_the_page(store: ReportStore, client: Api) -> None:
    store.set_label("c1", "lee", "therapist", "Dr. Lee", by="t")
    other, _ = store.create_token("c2", "clinic-admin")
    page = client.get("/directory", other)
    assert page.status == 200 and "Dr. Lee" not in page.text
    assert client.get("/directory").status == 401
    for scope in ("reports", "ingest"):
        token, _ = store.create_token("c1", scope)
        assert client.get("/directory", token).status == 403
        assert post(client, token, action="label", participant_id="x", role="client",
                    label="X").status == 403
    root, _ = store.create_token("c0", "admin")
    assert client.get("/directory", root).status == 400
    page = client.get("/directory?clinic=c1", root)
    assert page.status == 200 and "Dr. Lee" in page.text
    reply = post(client, root, clinic="c1", action="label", participant_id="ann",
                 role="client", label="Ann")
    assert reply.status == 303 and reply.headers["Location"].startswith("/directory?clinic=c1")
    assert len(store.list_labels("c1")) == 2 and store.list_labels("c0") == []
