"""Issue 16 findings 1, 5 and 9, each reproducing the probe's request against one ingest (an
in-memory publisher; the published events are then run through the workers' processor) or
the report API: sessions belong to clinics by construction, participant ids are pseudonyms
from the edge on, and nothing answers differently for another clinic's ids."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from ingestkit import HIDE, INGEST_C1, INGEST_C2, auth, ingest_client, start
from reportkit import KEY, Api, api, ipu, quality_record, report_record
from sqlalchemy import event

from models.analyzer import Analyzer
from models.config import EngineConfig, PipelineConfig
from models.events import parse_event
from models.processor import BatchProcessor
from models.records import InputRecord
from services.ingest import MemoryPublisher
from services.reports import LiveHub
from services.store import ReportStore


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 60))


def speech(pid: str, a: int, b: int, session: str = "s1") -> dict[str, Any]:
    return {"type": "speech", "session_id": session, "participant_id": pid,
            "start_ms": a, "end_ms": b}


def worker_reports(sink: MemoryPublisher) -> dict[bytes, dict[str, Any]]:
    """What the workers make of everything the ingest published, by record key."""
    records = [InputRecord(r.value, 0, n, 1_000 + n, key=r.key)
               for n, r in enumerate(sink.events)]
    records.append(InputRecord(b"", 0, len(records), 10**9, control=True))
    result = BatchProcessor(pipeline=PipelineConfig()).process(records, lambda _: [])
    assert [o for o in result.outputs if o.topic == "dlq"] == []
    return {o.key or b"": orjson.loads(o.value) for o in result.outputs
            if o.topic == "reports"}


def test_finding_1_another_clinic_cannot_write_into_or_end_a_session() -> None:
    """The probe: clinic c2 posts a session.start for c1's live "s1", an intruder's join and
    speech, and ends "s1". Before, c2 got 202s, c1's own events then 403, and c1's report
    listed three participants with the wrong duration. Now c2 only ever reaches its own
    "s1"; c1's events keep being accepted, and c1's report is exactly c1's session."""
    c1 = [start(), speech("p1", 1000, 5000), speech("p2", 5500, 9000),
          {"type": "session.end", "session_id": "s1", "ts_ms": 60_000}]
    c2 = [start("s1", "c2"),
          {"type": "participant.join", "session_id": "s1", "participant_id": "intruder",
           "role": "client", "ts_ms": 2000}, speech("intruder", 2000, 4000)]

    async def scenario() -> MemoryPublisher:
        async with ingest_client() as (client, sink):
            assert (await client.post("/v1/events", json=c1[:1],
                                      headers=auth(INGEST_C1))).status == 202
            assert (await client.post("/v1/events", json=c2,
                                      headers=auth(INGEST_C2))).status == 202
            reply = await client.post("/v1/sessions/s1/end", json={"ts_ms": 10_000},
                                      headers=auth(INGEST_C2))
            assert reply.status == 204
            reply = await client.post("/v1/events", json=c1[1:], headers=auth(INGEST_C1))
            assert reply.status == 202, await reply.text()
            return sink

    sink = run(scenario())
    assert {r.key for r in sink.events} == {b"c1 s1", b"c2 s1"}
    reports = worker_reports(sink)
    analyzer = Analyzer(EngineConfig())
    for item in HIDE.apply(c1):
        analyzer.feed(parse_event(item))
    (expected,) = analyzer.finish_all()
    mine = reports[b"c1 s1"]
    assert mine["report"] == expected
    assert mine["report"]["duration_s"] == 60.0
    assert [p["participant_id"] for p in mine["participants"]] == [HIDE("p1"), HIDE("p2")]
    theirs = reports[b"c2 s1"]
    assert theirs["clinic_id"] == "c2" and theirs["report"]["duration_s"] == 10.0


def test_finding_5_no_raw_participant_id_leaves_the_ingest(
        caplog: pytest.LogCaptureFixture) -> None:
    """The probe saw ``session … started by participant patient-jane-doe-1975`` at INFO and
    raw ids on the topics. Now every published event, dead letter and log line (DEBUG
    included) carries the pseudonym: HTTP events, a rejected event, and a WebRTC offer
    (its SDP is refused after the participant joined, which is logged)."""
    raw = "patient-jane-doe-1975"
    body = [{**start(), "participants": [{"participant_id": raw, "role": "client"}]},
            speech(raw, 0, 1000), {**speech(raw, 0, 1000), "end_ms": -1}]

    async def scenario() -> MemoryPublisher:
        async with ingest_client() as (client, sink):
            reply = await client.post("/v1/events", json=body, headers=auth(INGEST_C1))
            assert reply.status == 207
            reply = await client.post(
                f"/v1/sessions/s9/participants/{raw}/offer", headers=auth(INGEST_C1),
                json={"sdp": "v=0\r\nnot really an offer\r\n", "type": "offer",
                      "role": "client", "mode": "audio"})
            assert reply.status == 422 and (await reply.json())["field"] == "sdp"
            return sink

    with caplog.at_level(logging.DEBUG):
        sink = run(scenario())
    published = b"\n".join(r.value for r in [*sink.events, *sink.dlq])
    assert raw.encode() not in published
    assert HIDE(raw).encode() in published
    assert len(sink.dlq) == 1
    # The test server writes an access log (paths name the participant); the services run
    # without one (access_log=None in services/cli/ingest.py and run.py).
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name != "aiohttp.access")
    assert f"started by participant {HIDE(raw)}" in logged
    assert raw not in logged


def test_finding_9_the_ingest_answers_another_clinics_ids_like_unknown_ones() -> None:
    """Before: an event of c1's session "s1" from c2 was 403 "belongs to another clinic",
    of an unknown id 202; a WebRTC offer for it was refused naming c1. Now both answers are
    those of an unknown id."""
    offer = {"sdp": "v=0\r\nnot really an offer\r\n", "type": "offer", "role": "client",
             "mode": "audio"}

    async def scenario() -> list[tuple[int, Any]]:
        async with ingest_client() as (client, _):
            assert (await client.post("/v1/events", json=[start()],
                                      headers=auth(INGEST_C1))).status == 202
            answers = []
            for session in ("s1", "unknown"):  # c1's id, then one nobody uses
                for path, body in (("/v1/events", [speech("x", 0, 10, session)]),
                                   (f"/v1/sessions/{session}/participants/x/offer", offer)):
                    reply = await client.post(path, json=body, headers=auth(INGEST_C2))
                    answers.append((reply.status, await reply.json()))
            return answers

    on_theirs_event, on_theirs_offer, on_unknown_event, on_unknown_offer = run(scenario())
    assert on_theirs_event == on_unknown_event == (202, {"accepted": 1})
    assert on_theirs_offer[0] == on_unknown_offer[0] == 422
    assert "c1" not in str(on_theirs_offer)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReportStore]:
    with ReportStore(f"sqlite:///{tmp_path / 'reports.db'}", KEY) as opened:
        opened.save_report(report_record("s1", "c1"))
        opened.add_timeline(quality_record("s1", "c1", [ipu(0, "t", "therapist", 0, 900)]))
        yield opened


@pytest.fixture
def client(store: ReportStore) -> Iterator[Api]:
    with api(store) as running:
        yield running


def test_finding_9_timeline_404s_cost_the_same_for_missing_and_other_clinics_ids(
        store: ReportStore, client: Api) -> None:
    """Before: c2 asking for c1's "s1" took one query (found, another clinic's: 404), for a
    missing id three (measurably slower). Now both are the same single statement."""
    other, _ = store.create_token("c2", "reports")
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "tokens" not in statement:
            statements.append(statement)

    event.listen(store.db.engine, "before_cursor_execute", count)
    try:
        costs = []
        for session in ("s1", "missing"):
            statements.clear()
            reply = client.get(f"/v1/sessions/{session}/timeline", other)
            assert reply.status == 404 and reply.json() == {"error": "session: not found"}
            costs.append(list(statements))
    finally:
        event.remove(store.db.engine, "before_cursor_execute", count)
    assert len(costs[0]) == len(costs[1]) == 1
    assert costs[0] == costs[1]  # the same statement, only the parameters differ
    own, _ = store.create_token("c1", "reports")
    assert client.get("/v1/sessions/s1/timeline", own).status == 200


def test_the_live_dashboard_keeps_two_clinics_sessions_of_one_id_apart() -> None:
    """Finding 1 on the live dashboard: c2's "s1" neither merges into nor ends c1's."""
    hub = LiveHub()

    def quality(clinic: str) -> dict[str, Any]:
        return quality_record("s1", clinic, [ipu(0, "t", "therapist", 0, 900)])

    assert hub.apply(quality("c1")) and hub.apply(quality("c2"))
    assert [(s["clinic_id"], s["session_id"]) for s in hub.sessions(None)] == [
        ("c1", "s1"), ("c2", "s1")]
    assert [s["clinic_id"] for s in hub.sessions("c1")] == ["c1"]
    assert hub.apply(report_record("s1", "c2"))  # c2's report ends c2's session only
    assert [(s["clinic_id"], s["session_id"]) for s in hub.sessions(None)] == [("c1", "s1")]
    assert hub.apply(quality("c1"))  # c1's session still takes updates
