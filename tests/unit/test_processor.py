"""The streaming workers' logic without Kafka (models/processor.py): reports equal to the
offline analysis whatever the batching, exactly-once effects across a simulated crash and
replay, dead-letter records naming the field, stream-clock closing."""

from __future__ import annotations

import base64
import random
import zlib
from collections.abc import Iterable
from typing import Any

import orjson
import pytest

from models import checkpoint
from models.analyzer import Analyzer
from models.config import EngineConfig, PipelineConfig
from models.errors import ValidationError
from models.events import parse_event
from models.processor import BatchProcessor, BatchResult, OutputRecord
from models.records import InputRecord
from models.simulation import SimulationConfig, simulate
from models.stream_session import (
    REPORT_POSITION_HEADER,
    ClosedSession,
    PublishedReport,
    SessionState,
    UnreadableState,
    load_state,
    reconcile,
)
from models.topics import parse_session_key, session_key

PARTITIONS = 4


def batched(events: list[dict[str, Any]], size: int) -> list[tuple[str, bytes]]:
    """Events grouped per session into JSONL records of up to ``size`` events, as Rapport's
    producers publish them (a session's order is kept; sessions interleave)."""
    pending: dict[str, list[bytes]] = {}
    out: list[tuple[str, bytes]] = []
    for event in events:
        lines = pending.setdefault(event["session_id"], [])
        lines.append(orjson.dumps(event))
        if len(lines) == size:
            out.append((event["session_id"], b"\n".join(lines)))
            del pending[event["session_id"]]
    out += [(sid, b"\n".join(lines)) for sid, lines in pending.items()]
    return out


class Log:
    """A partitioned topic in memory: records keyed by session, offsets per partition,
    record timestamps 1 ms apart (a file published at full speed)."""

    def __init__(self) -> None:
        self.records: list[InputRecord] = []
        self._next: dict[int, int] = {}
        self.clock = 1_000_000
        # Each session's clinic (from its session.start; "c1" otherwise), for the key.
        self.clinics: dict[str, str] = {}

    def append(self, value: bytes, session_id: str | None, *, control: bool = False,
               partition: int | None = None, key: bytes | None = None) -> None:
        if key is None and session_id:
            key = session_key(self.clinics.get(session_id, "c1"), session_id)
        if partition is None:
            partition = zlib.crc32(key or b"") % PARTITIONS
        offset = self._next.get(partition, 0)
        self._next[partition] = offset + 1
        self.clock += 1
        self.records.append(InputRecord(value, partition, offset, self.clock, key=key,
                                        control=control))

    def learn(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            if event.get("type") == "session.start":
                self.clinics[event["session_id"]] = event["clinic_id"]

    def events(self, events: Iterable[dict[str, Any]]) -> None:
        events = list(events)
        self.learn(events)
        for event in events:
            self.append(orjson.dumps(event), event.get("session_id"))

    def batches(self, events: list[dict[str, Any]], size: int) -> None:
        self.learn(events)
        for session_id, value in batched(events, size):
            self.append(value, session_id)

    def ticks(self, advance_ms: int) -> None:
        """A tick on every partition, ``advance_ms`` later (stream time passes)."""
        self.clock += advance_ms
        for partition in range(PARTITIONS):
            self.append(b"", None, control=True, partition=partition)


class Persisted:
    """What a worker's changelog-backed table holds: checkpoint bytes per session."""

    def __init__(self) -> None:
        self.table: dict[str, bytes] = {}

    def apply(self, result: BatchResult) -> None:
        for session_id, (_, state) in result.writes.items():
            if state is None:
                self.table.pop(session_id, None)
            else:
                self.table[session_id] = checkpoint.dump(state)

    def restore(self, partition: int) -> list[tuple[str, SessionState]]:
        states = [(key, load_state(data)) for key, data in self.table.items()]
        return [(k, s) for k, s in states if s.partition == partition]


def run(processor: BatchProcessor, records: list[InputRecord], persisted: Persisted,
        batch_sizes: random.Random | None = None) -> list[OutputRecord]:
    outputs: list[OutputRecord] = []
    i = 0
    while i < len(records):
        size = batch_sizes.randint(1, 400) if batch_sizes else len(records)
        result = processor.process(records[i : i + size], persisted.restore)
        persisted.apply(result)
        outputs.extend(result.outputs)
        i += size
    return outputs


def values(outputs: list[OutputRecord], topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(o.value) for o in outputs if o.topic == topic]


def offline(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    analyzer = Analyzer(EngineConfig())
    for event in events:
        analyzer.feed(parse_event(event))
    return {r["session_id"]: r for r in analyzer.finish_all()}


def simulated(sessions: int = 6, minutes: float = 3.0, seed: int = 3) -> list[dict[str, Any]]:
    return list(simulate(SimulationConfig(
        sessions=sessions, minutes=minutes, seed=seed, style="mixed", jitter_ms=3000,
        duplicate_rate=0.05, session_stagger_ms=20_000)))


def test_reports_equal_offline_analysis_whatever_the_batching() -> None:
    events = simulated()
    log = Log()
    log.events(events)
    log.ticks(PipelineConfig().end_grace_ms)
    outputs = run(BatchProcessor(), log.records, Persisted(), random.Random(7))
    reports = values(outputs, "reports")
    expected = offline(events)
    assert {r["session_id"] for r in reports} == set(expected)
    for record in reports:
        assert record["report"] == expected[record["session_id"]]
        assert record["ended_by"] == "session.end"
        assert record["schema_version"] == 1 and record["clinic_id"]
    assert not values(outputs, "dlq")


def test_a_crash_and_replay_changes_nothing_and_publishes_each_report_once() -> None:
    events = simulated(sessions=4, seed=11)
    log = Log()
    log.events(events)
    log.ticks(PipelineConfig().end_grace_ms)
    records = log.records
    rng = random.Random(5)
    persisted = Persisted()
    first = BatchProcessor()
    crash_at = len(records) * 2 // 3
    outputs = run(first, records[:crash_at], persisted, rng)
    # The new worker restores from the table and re-reads from an older committed offset:
    # everything since then is redelivered.
    committed = crash_at - 500
    outputs += run(BatchProcessor(), records[committed:], persisted, rng)
    reports = values(outputs, "reports")
    expected = offline(events)
    assert sorted(r["session_id"] for r in reports) == sorted(expected)
    for record in reports:
        assert record["report"] == expected[record["session_id"]]
    # Timeline ordinals stay unique per session across the crash.
    seen = set()
    for quality in values(outputs, "quality"):
        for item in quality["events"]:
            key = (quality["session_id"], item["n"])
            assert key not in seen
            seen.add(key)


def _crash_right_after_a_report(reconciled: bool) -> tuple[list[OutputRecord],
                                                             dict[str, dict[str, Any]]]:
    """A worker dies after a batch's report is on the broker, before any of that batch's
    state (the closed marker included) is persisted; a new worker restores the table (as of
    the last commit) and replays from the crashed batch on, reading the reports topic back
    first when ``reconciled`` (streams/report_log.py)."""
    events = simulated(sessions=4, seed=11)
    log = Log()
    log.events(events)
    log.ticks(PipelineConfig().end_grace_ms)
    records = log.records
    persisted = Persisted()
    first = BatchProcessor()
    outputs: list[OutputRecord] = []
    i = 0
    while True:
        batch = records[i : i + 50]
        result = first.process(batch, persisted.restore)
        outputs.extend(result.outputs)
        if any(o.topic == "reports" for o in result.outputs):
            break  # died before persisting this batch's writes
        persisted.apply(result)
        i += 50
    published: dict[str, PublishedReport] = {}
    for output in outputs:
        if output.topic == "reports":
            report = PublishedReport.parse(output.value, output.headers, log.clock,
                                           output.key)
            assert report is not None
            published[report.key] = report

    def restore(partition: int) -> list[tuple[str, SessionState]]:
        states = persisted.restore(partition)
        if not reconciled:
            return states
        mine = {k: v for k, v in published.items() if v.partition == partition}
        return reconcile(states, mine)[0]

    second = BatchProcessor()
    j = i
    while j < len(records):
        result = second.process(records[j : j + 50], restore)
        persisted.apply(result)
        outputs.extend(result.outputs)
        j += 50
    return outputs, offline(events)


def test_a_report_published_just_before_a_crash_is_not_published_again() -> None:
    outputs, expected = _crash_right_after_a_report(reconciled=True)
    reports = values(outputs, "reports")
    assert sorted(r["session_id"] for r in reports) == sorted(expected)
    for record in reports:
        assert record["report"] == expected[record["session_id"]]
    # The replayed records up to the report's position count as already applied: nothing
    # is rejected for the session being closed.
    assert not values(outputs, "dlq")
    for output in outputs:
        if output.topic == "reports":
            assert dict(output.headers)[REPORT_POSITION_HEADER].count(b":") == 2


def test_without_reading_reports_back_that_crash_would_repeat_the_report() -> None:
    """Why the reports topic is read back: the same crash, restored from the table alone."""
    outputs, expected = _crash_right_after_a_report(reconciled=False)
    reported = [r["session_id"] for r in values(outputs, "reports")]
    assert len(reported) > len(set(reported)) == len(expected)


def test_reconcile_closes_open_and_unknown_sessions_at_the_reports_position() -> None:
    session = BatchProcessor()
    log = Log()
    events = simulated(sessions=1, minutes=1.0, seed=2)
    log.events(events[:40])
    result = session.process(log.records, lambda _: [])
    ((key, (partition, state)),) = [w for w in result.writes.items() if w[1][1] is not None]
    assert state is not None
    header = ((REPORT_POSITION_HEADER, b"%d:%d:%d" % (partition, 77, 2)),)
    value = orjson.dumps({"session_id": state.session_id, "ended_by": "session.end"})
    report = PublishedReport.parse(value, header, 123_456_789, key.encode())
    other = PublishedReport.parse(orjson.dumps({"session_id": "gone", "ended_by":
                                                "idle_timeout"}), header, 5, b"c9 gone")
    assert report is not None and other is not None
    kept, closed = reconcile([(key, state)], {key: report, "c9 gone": other})
    assert kept == closed
    assert closed[0] == (key, ClosedSession(state.session_id, partition, 77, 2, 123_456_789,
                                            "session.end"))
    assert closed[1][0] == "c9 gone" and closed[1][1].session_id == "gone"
    assert closed[1][1].ended_by == "idle_timeout"
    marker = closed[0][1]
    assert marker.replayed(partition, 77, 2) and not marker.replayed(partition, 77, 3)
    # Records without the header (an older worker), without the clinic in their key (keyed
    # before issue 16) or not reports are ignored, not fatal.
    assert PublishedReport.parse(value, (), 1, key.encode()) is None
    assert PublishedReport.parse(value, header, 1, state.session_id.encode()) is None
    assert PublishedReport.parse(b"{not json", header, 1, key.encode()) is None
    assert PublishedReport.parse(orjson.dumps({"session_id": 3, "ended_by": "x"}), header,
                                 1, key.encode()) is None


def test_malformed_records_go_to_the_dead_letter_topic_with_field_and_reason() -> None:
    log = Log()
    log.append(b"{not json", "x")
    log.append(b"[1, 2]", "x")
    log.append(orjson.dumps({"type": "hello", "session_id": "s1"}), "s1")
    log.append(orjson.dumps({"type": "session.end", "session_id": "s1", "ts_ms": "soon"}), "s1")
    log.append(b'{"type":"speech","pad":"' + b"x" * 2_000_000 + b'"}', "s1")
    processor = BatchProcessor()
    result = processor.process(log.records, Persisted().restore)
    dead = values(result.outputs, "dlq")
    assert [d["reason"] for d in dead] == [
        "malformed_json", "malformed_json", "invalid", "invalid", "too_large"]
    assert [d["field"] for d in dead] == ["json", "event", "type", "session.end.ts_ms", "event"]
    assert "unknown event type 'hello'" in dead[2]["error"]
    assert dead[3]["session_id"] == "s1"
    assert base64.b64decode(dead[0]["raw"]) == b"{not json"
    assert dead[4]["raw_size"] > 2_000_000 and dead[4]["raw_truncated"]
    assert len(base64.b64decode(dead[4]["raw"])) == PipelineConfig().max_dlq_raw_bytes
    assert {tuple(d["source"]) for d in dead} == {("topic", "partition", "offset", "index",
                                                   "timestamp_ms")}
    assert result.rejected == {"malformed_json": 2, "invalid": 2, "too_large": 1}
    assert result.consumed == 5


START = {"type": "session.start", "session_id": "s1", "ts_ms": 0, "clinic_id": "c1",
         "participants": [{"participant_id": "t", "role": "therapist"},
                          {"participant_id": "c", "role": "client"}]}


def speech(pid: str, start: int, end: int) -> dict[str, Any]:
    return {"type": "speech", "session_id": "s1", "participant_id": pid,
            "start_ms": start, "end_ms": end}


def test_idle_sessions_close_on_the_stream_clock_not_before() -> None:
    config = PipelineConfig(idle_timeout_ms=60_000)
    processor = BatchProcessor(pipeline=config)
    persisted = Persisted()
    log = Log()
    log.events([START, speech("t", 1000, 4000), speech("c", 4500, 9000)])
    log.ticks(59_000)
    assert not values(run(processor, log.records, persisted), "reports")
    log.records.clear()
    log.ticks(2_000)
    reports = values(run(processor, log.records, persisted), "reports")
    assert [r["ended_by"] for r in reports] == ["idle_timeout"]
    assert reports[0]["report"]["duration_s"] == 9.0  # D ends at the last speech offset (§1)
    assert reports[0]["event_time_ms"] == 9000


def test_events_after_close_are_rejected_and_redeliveries_are_skipped() -> None:
    processor = BatchProcessor()
    persisted = Persisted()
    log = Log()
    log.events([START, speech("t", 1000, 4000),
                {"type": "session.end", "session_id": "s1", "ts_ms": 10_000}])
    log.ticks(6_000)
    first = run(processor, log.records, persisted)
    assert len(values(first, "reports")) == 1
    # Redelivery of the same records (same offsets): silently skipped, nothing published.
    again = processor.process(log.records, persisted.restore)
    assert not values(again.outputs, "reports") and not values(again.outputs, "dlq")
    assert again.replayed == 3
    # A new record for the closed session is rejected, saying why.
    log.records.clear()
    log.events([speech("c", 5000, 6000)])
    late = values(run(processor, log.records, persisted), "dlq")
    assert [(d["reason"], d["field"]) for d in late] == [("session_state", "speech.session_id")]


def test_a_session_without_start_is_reported_unreportable() -> None:
    processor = BatchProcessor(pipeline=PipelineConfig(idle_timeout_ms=1_000))
    log = Log()
    log.events([speech("t", 1000, 4000)])
    log.ticks(2_000)
    outputs = run(processor, log.records, Persisted())
    dead = values(outputs, "dlq")
    assert [(d["reason"], d["session_id"]) for d in dead][-1] == ("unreportable", "s1")
    assert not values(outputs, "reports")


def test_quality_updates_carry_snapshots_and_new_classified_events() -> None:
    processor = BatchProcessor()
    persisted = Persisted()
    log = Log()
    # The source declares its segments last at most 2.5 s (§9): events are final 7.5 s after
    # the newest known time, so classified events come out while the session runs.
    log.events([{**START, "max_segment_ms": 2500}]
               + [speech("t" if k % 2 else "c", k * 3000, k * 3000 + 2500)
                  for k in range(1, 12)])
    quality = values(run(processor, log.records, persisted, random.Random(1)), "quality")
    assert quality, "a session with speech publishes live updates"
    numbers = [item["n"] for q in quality for item in q["events"]]
    assert numbers == list(range(len(numbers)))
    for q in quality:
        assert q["snapshot"]["final"] is False
        assert q["event_time_ms"] >= 0 and q["source"]["offset"] >= 0
        assert q["final_through_ms"] is None or q["final_through_ms"] <= q["event_time_ms"]
    assert any(item["kind"] == "speaker_change" for q in quality for item in q["events"])


def test_revoked_partitions_are_restored_from_persisted_state() -> None:
    events = simulated(sessions=3, minutes=2, seed=2)
    log = Log()
    log.events(events)
    log.ticks(PipelineConfig().end_grace_ms)
    half = len(log.records) // 2
    persisted = Persisted()
    worker = BatchProcessor()
    outputs = run(worker, log.records[:half], persisted)
    worker.revoke(range(PARTITIONS))
    assert worker.open_sessions() == 0
    outputs += run(worker, log.records[half:], persisted)
    expected = offline(events)
    assert {r["session_id"]: r["report"] for r in values(outputs, "reports")} == expected


@pytest.mark.parametrize("field,value", [("snapshot_interval_ms", -1), ("max_record_bytes", 0),
                                         ("end_grace_ms", 1.5)])
def test_pipeline_config_rejects_bad_values_naming_them(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        PipelineConfig(**{field: value})


def test_multi_event_records_give_the_same_reports_and_replay_safely() -> None:
    events = simulated(sessions=4, seed=19)
    log = Log()
    log.batches(events, 7)
    log.ticks(PipelineConfig().end_grace_ms)
    records = log.records
    persisted = Persisted()
    crash_at = len(records) // 2
    outputs = run(BatchProcessor(), records[:crash_at], persisted, random.Random(2))
    outputs += run(BatchProcessor(), records[crash_at - 40 :], persisted, random.Random(3))
    expected = offline(events)
    reports = values(outputs, "reports")
    assert sorted(r["session_id"] for r in reports) == sorted(expected)
    for record in reports:
        assert record["report"] == expected[record["session_id"]]


def test_a_bad_line_in_a_multi_event_record_is_rejected_alone_with_its_index() -> None:
    log = Log()
    lines = [orjson.dumps(START), b"{oops", orjson.dumps(speech("t", 1000, 3000))]
    log.append(b"\n".join(lines), "s1")
    result = BatchProcessor().process(log.records, Persisted().restore)
    dead = values(result.outputs, "dlq")
    assert [(d["reason"], d["source"]["index"]) for d in dead] == [("malformed_json", 1)]
    assert base64.b64decode(dead[0]["raw"]) == b"{oops"
    assert result.consumed == 3 and result.opened == 1


def test_an_unreadable_persisted_state_is_dead_lettered_and_closed_not_crashed_on() -> None:
    """Issue 15, point 4: a persisted state that cannot be restored closes its session as
    ``unreportable`` with a dead-letter record of the bytes; later events of it are rejected,
    and every other session of the partition carries on to its report."""
    events = simulated(sessions=4, minutes=2, seed=5)
    log = Log()
    log.events(events)
    log.ticks(PipelineConfig().end_grace_ms)
    half = len(log.records) // 2
    persisted = Persisted()
    outputs = run(BatchProcessor(), log.records[:half], persisted)
    victim = sorted(persisted.table)[0]
    partition = load_state(persisted.table[victim]).partition
    corrupt = persisted.table[victim][:5] + b"\x00garbage"
    persisted.table[victim] = corrupt

    def restore(p: int) -> list[tuple[str, SessionState | UnreadableState]]:
        states: list[tuple[str, SessionState | UnreadableState]] = []
        for key, data in persisted.table.items():
            try:
                state = load_state(data)
            except checkpoint.CheckpointError as error:
                if p == partition:
                    states.append((key, UnreadableState(key, p, data, str(error))))
                continue
            if state.partition == p:
                states.append((key, state))
        return states

    second = BatchProcessor()  # a new worker takes every partition over
    rest = log.records[half:]
    results = [second.process(rest[i : i + 100], restore) for i in range(0, len(rest), 100)]
    for result in results:
        persisted.apply(result)
        outputs.extend(result.outputs)
    assert sum(r.unreadable for r in results) == 1
    assert sum(r.closed["unreportable"] for r in results) == 1
    victim_clinic, victim_id = victim.split(" ")
    dead = [d for d in values(outputs, "dlq") if d["session_id"] == victim_id]
    assert {d["clinic_id"] for d in dead} == {victim_clinic}
    first, *later = dead
    assert (first["reason"], first["field"]) == ("unreportable", "checkpoint")
    assert "corrupt checkpoint" in first["error"] and str(len(corrupt)) in first["error"]
    assert base64.b64decode(first["raw"]) == corrupt
    assert first["source"]["partition"] == partition
    assert later and {(d["reason"], d["error"].split(": ", 1)[1]) for d in later} == {
        ("session_state", "session already closed (unreportable)")}
    # The corrupt entry is replaced by a closed marker; every other session is reported.
    assert load_state(persisted.table[victim]) == ClosedSession(
        victim_id, partition, -1, -1,
        next(r.timestamp_ms for r in rest if r.partition == partition), "unreportable")
    reports = {r["session_id"]: r["report"] for r in values(outputs, "reports")}
    expected = offline(events)
    del expected[victim_id]
    assert reports == expected


def _clinic_session(clinic: str, talk: list[tuple[str, int, int]]) -> list[dict[str, Any]]:
    return [{**START, "clinic_id": clinic}, *(speech(p, a, b) for p, a, b in talk),
            {"type": "session.end", "session_id": "s1", "ts_ms": 20_000}]


def test_the_same_session_id_in_two_clinics_is_two_sessions() -> None:
    """Issue 16 finding 1: a session is (clinic, session id) on the worker too; clinic B's
    events for "s1" neither reach nor close clinic A's "s1", and each report is its own."""
    a = _clinic_session("A", [("t", 1000, 4000), ("c", 4500, 9000)])
    b = _clinic_session("B", [("t", 2000, 3000)])
    log = Log()
    for event in a:
        log.append(orjson.dumps(event), "s1", key=b"A s1")
    for event in b:
        log.append(orjson.dumps(event), "s1", key=b"B s1")
    log.ticks(PipelineConfig().end_grace_ms)
    outputs = run(BatchProcessor(), log.records, Persisted())
    assert not values(outputs, "dlq")
    reports = {(r["clinic_id"], r["session_id"]): r for r in values(outputs, "reports")}
    assert reports.keys() == {("A", "s1"), ("B", "s1")}
    assert reports["A", "s1"]["report"] == offline(a)["s1"]
    assert reports["B", "s1"]["report"] == offline(b)["s1"]
    assert {o.key for o in outputs if o.topic == "reports"} == {b"A s1", b"B s1"}


@pytest.mark.parametrize(("key", "field"), [
    (None, "key"), (b"s1", "key"), (b"A s2", "key"), (b"A  s1", "key"),
    (b"B s1", "session.start.clinic_id")])
def test_a_record_whose_key_lacks_or_contradicts_the_clinic_is_dead_lettered(
        key: bytes | None, field: str) -> None:
    """Platforms writing straight into Kafka key records by ``clinic_id session_id``
    (models/topics.py); a record keyed without a clinic, for another session, or whose
    session.start names another clinic than its key, is rejected naming the field."""
    record = InputRecord(orjson.dumps({**START, "clinic_id": "A"}), 0, 0, 1_000, key=key)
    result = BatchProcessor().process([record], Persisted().restore)
    (dead,) = values(result.outputs, "dlq")
    assert (dead["reason"], dead["field"], dead["session_id"]) == ("invalid", field, "s1")
    assert result.opened == 0 and not result.writes


@pytest.mark.parametrize(("clinic", "session"), [
    ("c1", "s1"), ("c:1/x", "=s1"), ("a" * 128, "~" * 128), ("!", "\"")])
def test_the_session_key_round_trips_every_valid_pair(clinic: str, session: str) -> None:
    """models/topics.py: ``clinic_id SP session_id`` is unambiguous since ids have no spaces."""
    key = session_key(clinic, session)
    assert key.count(b" ") == 1
    assert parse_session_key(key) == (clinic, session)


@pytest.mark.parametrize("key", [None, b"", b"s1", b" s1", b"c1 ", b"c1 s 1",
                                 "c1 s\u00e9".encode(), b"c1 " + b"s" * 129])
def test_a_key_that_is_not_a_session_key_names_the_key(key: bytes | None) -> None:
    with pytest.raises(ValidationError) as raised:
        parse_session_key(key)
    assert raised.value.field == "key"
