"""Every filter of the report API, pagination and the CSV export over HTTP, on SQLite and on
the local PostgreSQL; and ``rapport tokens`` + ``rapport reports`` as real processes sharing
one database (issue 5)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from reportkit import BACKENDS, Api, api, day_ms, open_store, report_record

from services.store import ReportStore


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReportStore]:
    with open_store(request.param, tmp_path) as opened:
        silence = [{"type": "long_silence", "ts_ms": 1, "cleared_ms": 2}]
        network = [{"type": "network_degraded", "ts_ms": 1, "cleared_ms": None,
                    "participant_id": "p1"}]
        for i in range(12):  # c1: twelve sessions, one per day from 2026-03-01
            opened.save_report(report_record(
                f"c1-{i:02d}", "c1", therapist="ta" if i % 3 else "tb",
                start_ms=day_ms(f"2026-03-{i + 1:02d}"), therapist_share=0.5 + i / 100,
                alerts=silence if i % 4 == 0 else network if i % 4 == 1 else []))
        opened.save_report(report_record("c2-00", "c2", therapist="ta",
                                         start_ms=day_ms("2026-03-05"), alerts=silence))
        yield opened


@pytest.fixture
def client(store: ReportStore) -> Iterator[Api]:
    with api(store) as running:
        yield running


def _ids(client: Api, token: str, **params: Any) -> list[str]:
    reply = client.get("/v1/sessions", token, **params)
    assert reply.status == 200, reply.text
    return [s["session_id"] for s in reply.json()["sessions"]]


def test_every_filter_over_http(store: ReportStore, client: Api) -> None:
    token, _ = store.create_token("c1", "reports")
    every = [f"c1-{i:02d}" for i in reversed(range(12))]
    assert _ids(client, token) == every
    assert _ids(client, token, clinic="c1") == every
    ta, tb = store.pseudonymize("ta"), store.pseudonymize("tb")
    assert _ids(client, token, therapist=tb) == ["c1-09", "c1-06", "c1-03", "c1-00"]
    assert len(_ids(client, token, therapist=ta)) == 8
    assert _ids(client, token, **{"from": "2026-03-10"}) == ["c1-11", "c1-10", "c1-09"]
    assert _ids(client, token, to="2026-03-02") == ["c1-01", "c1-00"]  # whole day included
    assert _ids(client, token, **{"from": "2026-03-03", "to": "2026-03-05"}) == [
        "c1-04", "c1-03", "c1-02"]
    assert _ids(client, token, **{"from": "2026-03-03T10:00:00Z",
                                  "to": "2026-03-04T10:00:00Z"}) == ["c1-02"]
    assert _ids(client, token, alert="long_silence") == ["c1-08", "c1-04", "c1-00"]
    assert _ids(client, token, alert="network_degraded") == ["c1-09", "c1-05", "c1-01"]
    assert _ids(client, token, alert="long_silence", therapist=tb,
                **{"from": "2026-03-02"}) == []
    assert _ids(client, token, alert="long_silence", therapist=ta) == ["c1-08", "c1-04"]
    admin, _ = store.create_token("ops", "admin")
    assert _ids(client, admin, alert="long_silence") == ["c1-08", "c2-00", "c1-04", "c1-00"]
    assert _ids(client, admin, clinic="c2") == ["c2-00"]


def test_pagination_follows_next_links(store: ReportStore, client: Api) -> None:
    token, _ = store.create_token("c1", "reports")
    first = client.get("/v1/sessions", token, limit=5, therapist=store.pseudonymize("ta"))
    body = first.json()
    assert (body["count"], body["limit"]) == (5, 5)
    seen = [s["session_id"] for s in body["sessions"]]
    assert body["next"].startswith("/v1/sessions?") and "therapist=" in body["next"]
    second = client.get(body["next"], token).json()
    seen += [s["session_id"] for s in second["sessions"]]
    assert second["next"] is None and second["next_cursor"] is None
    assert seen == ["c1-11", "c1-10", "c1-08", "c1-07", "c1-05", "c1-04", "c1-02", "c1-01"]


def test_csv_export_has_the_same_filters_and_every_row(store: ReportStore,
                                                       client: Api) -> None:
    token, _ = store.create_token("c1", "reports")
    reply = client.get("/v1/sessions.csv", token, alert="long_silence")
    assert reply.status == 200
    assert reply.headers["Content-Disposition"] == 'attachment; filename="sessions.csv"'
    rows = list(csv.DictReader(io.StringIO(reply.text)))
    assert [r["session_id"] for r in rows] == ["c1-08", "c1-04", "c1-00"]
    assert rows[0]["started_at"] == "2026-03-09T10:00:00Z"
    assert rows[0]["alert_types"] == "long_silence"
    assert float(rows[0]["therapist_talk_share"]) == 0.58
    assert rows[0]["therapist"] == store.pseudonymize("ta")
    everything = list(csv.DictReader(io.StringIO(client.get("/v1/sessions.csv", token).text)))
    assert len(everything) == 12  # not paginated


def test_timeline_and_trend_over_http(store: ReportStore, client: Api) -> None:
    token, _ = store.create_token("c1", "reports")
    trend = client.get(f"/v1/therapists/{store.pseudonymize('tb')}/trend", token).json()
    assert [s["session_id"] for s in trend["sessions"]] == ["c1-00", "c1-03", "c1-06", "c1-09"]
    assert trend["series"]["therapist_talk_share"] == [0.5, 0.53, 0.56, 0.59]
    recent = client.get(f"/v1/therapists/{store.pseudonymize('tb')}/trend", token, limit=2,
                        **{"from": "2026-03-02"}).json()
    assert [s["session_id"] for s in recent["sessions"]] == ["c1-06", "c1-09"]
    empty = client.get(f"/v1/therapists/{store.pseudonymize('tb')}/trend", token,
                       **{"from": "2027-01-01"})
    assert empty.status == 200 and empty.json()["sessions"] == []
    unknown = client.get(f"/v1/therapists/{store.pseudonymize('nobody')}/trend", token)
    assert unknown.status == 404


def _rapport(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, text=True,
                          capture_output=True, timeout=60, check=False)


def test_tokens_and_reports_commands_share_the_database(tmp_path: Path) -> None:
    env = {**os.environ, "RAPPORT_DATA_DIR": str(tmp_path / "data"),
           "RAPPORT_DB_URL": f"sqlite:///{tmp_path / 'shared.db'}"}
    env.pop("RAPPORT_PSEUDONYM_KEY", None)
    created = _rapport("tokens", "create", "--clinic", "c1", "--scope", "reports", env=env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    with ReportStore.from_settings(_settings(env)) as store:
        store.save_report(report_record("s1", "c1"))
    server = subprocess.Popen([sys.executable, "-m", "services.cli", "reports", "--port", "0"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline().strip()
        assert line.startswith("reports: http://127.0.0.1:"), server.stderr.read()
        base = line.removeprefix("reports: ")
        request = urllib.request.Request(f"{base}/v1/sessions",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            listed = orjson.loads(response.read())
        assert [s["session_id"] for s in listed["sessions"]] == ["s1"]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/v1/sessions", timeout=10)
        assert refused.value.code == 401
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert server.returncode == 0


def _settings(env: dict[str, str]) -> Any:
    from services.settings import load_settings

    return load_settings(env=env)
