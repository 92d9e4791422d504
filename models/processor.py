"""The streaming workers' logic, free of Kafka and Faust: input records in, output records and
state changes out (issue "Streaming workers"; docs/streaming.md).

A worker feeds :meth:`BatchProcessor.process` one micro-batch of records at a time. For each
record (one event, or several as JSON lines) it validates the bytes (size, JSON, wire v1,
METRICS.md §9), routes each event to its session's engine, and afterwards advances every
touched engine once, turning what became decidable into ``quality``, ``alert`` and dead-letter
records. Sessions close on the partition's stream clock (record timestamps): ``end_grace_ms``
after their ``session.end``, or after ``idle_timeout_ms`` without events; closing publishes
the final report. Sessions are held by their *session key* (``clinic_id session_id``, the
records' Kafka key; models/topics.py), so the same session id in two clinics is two sessions; a
record whose key names no clinic, or another session than its event, or a ``session.start``
whose ``clinic_id`` is not the key's, is dead-lettered naming the field. The caller persists
:attr:`BatchResult.writes` (the sessions whose state changed) *after* the outputs are durable,
so a crash repeats outputs at worst and never loses one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from models.classified import AlertEvent, Classified, Rejection
from models.config import EngineConfig, PipelineConfig
from models.errors import ValidationError
from models.events import Event, SessionEnd, SessionStart, decode_json, parse_event
from models.records import (
    InputRecord,
    RejectReason,
    Source,
    alert_record,
    new_source,
    quality_record,
    rejected_record,
    report_record,
)
from models.session import SessionEngine, event_time
from models.stream_session import (
    REPORT_POSITION_HEADER,
    ClosedSession,
    EndedBy,
    SessionState,
    StreamSession,
    UnreadableState,
    report_position,
)
from models.topics import parse_session_key, session_key

OutputTopic = Literal["quality", "alerts", "reports", "dlq"]
_NEVER = 2**63  # engines advance once per batch, driven by the processor


@dataclass(frozen=True, slots=True)
class OutputRecord:
    """A record to publish on ``topic`` (a role; the worker maps it to a topic name), on the
    input's partition, so a session's outputs stay co-partitioned with its events."""

    topic: OutputTopic
    key: bytes | None
    value: bytes
    partition: int
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(slots=True)
class BatchResult:
    outputs: list[OutputRecord] = field(default_factory=list)
    # session key ("clinic_id session_id") -> (partition, state to persist or None to delete).
    writes: dict[str, tuple[int, SessionState | None]] = field(default_factory=dict)
    consumed: int = 0  # input events (lines of records; ticks excluded)
    duplicates: int = 0  # events the engine recognised as already received
    replayed: int = 0  # records redelivered after a restart, skipped by offset
    rejected: Counter[str] = field(default_factory=Counter)  # by RejectReason value
    opened: int = 0
    closed: Counter[str] = field(default_factory=Counter)  # by EndedBy
    alerts: Counter[str] = field(default_factory=Counter)  # by alert kind (raised/cleared)
    quality_updates: int = 0
    # Per quality record: the timestamp (ms) of the input that triggered it (latency).
    update_sources: list[int] = field(default_factory=list)
    unreadable: int = 0  # persisted states that could not be restored (dead-lettered)


# (session key, persisted state) of every session persisted for a partition.
Restore = Callable[[int], Iterable[tuple[str, SessionState | UnreadableState]]]
# Source topic named by the dead-letter record of an unreadable persisted state.
CHECKPOINT_SOURCE = "checkpoint"


class BatchProcessor:
    """Per-worker state: the open sessions of the partitions this worker owns.

    ``restore(partition)`` is called the first time a partition shows up (after an
    assignment) and must yield every persisted session of that partition with its session
    key (models/topics.py); an entry that
    cannot be read comes as an :class:`UnreadableState`, and its session is closed as
    ``unreportable`` with a dead-letter record (:meth:`_unreadable`).
    """

    def __init__(self, engine: EngineConfig | None = None,
                 pipeline: PipelineConfig | None = None) -> None:
        self.engine_config = engine or EngineConfig()
        self.config = pipeline or PipelineConfig()
        self._sessions: dict[int, dict[str, SessionState]] = {}
        self._stream_ms: dict[int, int] = {}

    # --- partition ownership --------------------------------------------------------------

    @property
    def partitions(self) -> set[int]:
        return set(self._sessions)

    def open_sessions(self) -> int:
        return sum(isinstance(s, StreamSession) for p in self._sessions.values()
                   for s in p.values())

    def session(self, partition: int, key: str) -> SessionState | None:
        """The state this worker holds for the session ``key`` (``clinic_id session_id``)
        of ``partition``, if any."""
        return self._sessions.get(partition, {}).get(key)

    def revoke(self, partitions: Iterable[int]) -> None:
        """Forget partitions now owned by another worker; if one comes back, its sessions
        are restored from the persisted state (which the other worker kept current)."""
        for partition in partitions:
            self._sessions.pop(partition, None)
            self._stream_ms.pop(partition, None)

    # --- processing --------------------------------------------------------------------------

    def process(self, records: Sequence[InputRecord], restore: Restore) -> BatchResult:
        result = BatchResult()
        touched: dict[str, tuple[StreamSession, Source]] = {}
        partitions: set[int] = set()
        for record in records:
            partition = record.partition
            sessions = self._sessions.get(partition)
            if sessions is None:
                sessions = self._sessions[partition] = {}
                for key, state in restore(partition):
                    sessions[key] = state if not isinstance(
                        state, UnreadableState) else self._unreadable(
                        key, state, record.timestamp_ms, result)
            if record.timestamp_ms > self._stream_ms.get(partition, -1):
                self._stream_ms[partition] = record.timestamp_ms
            partitions.add(partition)
            if not record.control:
                self._ingest(record, sessions, touched, result)
        for key, (session, source) in touched.items():
            self._advance(key, session, source, result)
        for partition in sorted(partitions):
            self._close_due(partition, result)
        return result

    def _ingest(self, record: InputRecord, sessions: dict[str, SessionState],
                touched: dict[str, tuple[StreamSession, Source]], result: BatchResult) -> None:
        value = record.value
        if len(value) > self.config.max_record_bytes:
            result.consumed += 1
            error = ValidationError("event", f"{len(value)} bytes exceeds "
                                    f"max_record_bytes={self.config.max_record_bytes}")
            self._reject(result, RejectReason.TOO_LARGE, error, Source.of(record))
            return
        if b"\n" not in value.rstrip(b"\n"):
            result.consumed += 1
            self._ingest_event(record, value, 0, sessions, touched, result)
            return
        for index, line in enumerate(value.split(b"\n")):
            if line.strip():
                result.consumed += 1
                self._ingest_event(record, line, index, sessions, touched, result)

    def _ingest_event(self, record: InputRecord, line: bytes, index: int,
                      sessions: dict[str, SessionState],
                      touched: dict[str, tuple[StreamSession, Source]],
                      result: BatchResult) -> None:
        source = new_source(record.topic, record.partition, record.offset,
                            record.timestamp_ms, line, index)  # Source.of (every event)
        try:
            value = decode_json(line)
        except ValidationError as error:
            self._reject(result, RejectReason.MALFORMED_JSON, error, source)
            return
        try:
            event = parse_event(value)
        except ValidationError as error:
            reason = RejectReason.INVALID if isinstance(value, dict) else \
                RejectReason.MALFORMED_JSON
            named = value.get("session_id") if isinstance(value, dict) else None
            self._reject(result, reason, error, source,
                         session_id=named if isinstance(named, str) else None)
            return
        session_id = event.session_id
        try:
            clinic_id, keyed = parse_session_key(record.key)
            if keyed != session_id:
                raise ValidationError("key", f"names session {keyed!r}, the event "
                                             f"{session_id!r}")
            if isinstance(event, SessionStart) and event.clinic_id != clinic_id:
                raise ValidationError("session.start.clinic_id",
                                      f"{event.clinic_id!r} is not the clinic of the record's "
                                      f"key ({clinic_id!r})")
        except ValidationError as error:
            self._reject(result, RejectReason.INVALID, error, source, session_id=session_id,
                         event_time_ms=event_time(event))
            return
        key = f"{clinic_id} {session_id}"
        state = sessions.get(key)
        partition, offset = record.partition, record.offset
        # state.replayed(partition, offset, index), inlined (every event)
        if state is not None and partition == state.partition \
                and (offset, index) <= (state.last_offset, state.last_index):
            result.replayed += 1
            return
        if isinstance(state, ClosedSession):
            closed = ValidationError(f"{event.type}.session_id",
                                     f"session already closed ({state.ended_by})")
            self._reject(result, RejectReason.SESSION_STATE, closed, source,
                         session_id=session_id, clinic_id=clinic_id,
                         event_time_ms=event_time(event))
            return
        if state is None:
            engine = SessionEngine(session_id, self.engine_config, advance_step_ms=_NEVER)
            state = sessions[key] = StreamSession(engine, partition)
            result.opened += 1
        state.partition = partition
        state.last_offset = offset
        state.last_index = index
        if record.timestamp_ms > state.last_record_ms:
            state.last_record_ms = record.timestamp_ms
        touched[key] = (state, source)
        try:
            accepted = state.engine.ingest(event, source)
        except ValidationError as error:
            self._reject(result, RejectReason.of(error), error, source, session_id=session_id,
                         clinic_id=clinic_id, event_time_ms=event_time(event))
            return
        if not accepted:
            result.duplicates += 1
        elif isinstance(event, SessionEnd):
            state.end_record_ms = record.timestamp_ms

    def _advance(self, key: str, session: StreamSession, source: Source,
                 result: BatchResult) -> None:
        engine = session.engine
        engine.advance()
        events = self._collect(key, session, engine.drain(), source, result)
        result.writes[key] = (session.partition, session)
        # Live numbers run allowed_lateness_ms + look-ahead behind the newest known time;
        # classified events and alerts are final ones only (METRICS.md §9 "Final and live").
        decided = engine.live_decided_ms
        if decided is None:
            return
        due = session.next_snapshot_ms
        if events or due is None or decided >= due:
            session.next_snapshot_ms = decided + self.config.snapshot_interval_ms
            self._publish_quality(key, session, decided, engine.decided_ms,
                                  engine.snapshot(), events, source, result)

    def _publish_quality(self, key: str, session: StreamSession, decided: int,
                         final_through: int | None, snapshot: dict[str, Any],
                         events: list[dict[str, Any]], source: Source,
                         result: BatchResult) -> None:
        engine = session.engine
        record = quality_record(engine.session_id, _clinic(key), decided, final_through,
                                snapshot, events, source)
        self._emit(result, "quality", key.encode(), record, session.partition)
        result.quality_updates += 1
        result.update_sources.append(source.timestamp_ms)

    def _collect(self, key: str, session: StreamSession, outputs: list[Any], source: Source,
                 result: BatchResult) -> list[dict[str, Any]]:
        """Route drained engine outputs; returns the classified events, numbered."""
        engine = session.engine
        events: list[dict[str, Any]] = []
        for output in outputs:
            if isinstance(output, Classified):
                item = output.to_dict()
                item["n"] = session.next_n
                session.next_n += 1
                events.append(item)
            elif isinstance(output, AlertEvent):
                result.alerts[output.kind] += 1
                record = alert_record(engine.session_id, _clinic(key), output, source)
                self._emit(result, "alerts", key.encode(), record, session.partition)
            elif isinstance(output, Rejection):
                tag = output.tag if isinstance(output.tag, Source) else source
                self._reject(result, RejectReason.INCONSISTENT, output.error, tag,
                             session_id=engine.session_id, clinic_id=_clinic(key),
                             event_time_ms=event_time(output.event))
        return events

    # --- closing ------------------------------------------------------------------------------

    def _close_due(self, partition: int, result: BatchResult) -> None:
        now = self._stream_ms[partition]
        config = self.config
        sessions = self._sessions[partition]
        due: list[tuple[str, StreamSession, EndedBy]] = []
        expired: list[str] = []
        for key, state in sessions.items():
            if isinstance(state, ClosedSession):
                if now >= state.closed_record_ms + config.closed_retention_ms:
                    expired.append(key)
            elif state.end_record_ms is not None and \
                    now >= state.end_record_ms + config.end_grace_ms:
                due.append((key, state, "session.end"))
            elif now >= state.last_record_ms + config.idle_timeout_ms:
                due.append((key, state, "idle_timeout"))
        for key, session, ended_by in due:
            sessions[key] = self._close(key, session, ended_by, now, result)
        for key in expired:
            del sessions[key]
            result.writes[key] = (partition, None)

    def _close(self, key: str, session: StreamSession, ended_by: EndedBy, now: int,
               result: BatchResult) -> ClosedSession:
        engine = session.engine
        session_id = engine.session_id
        source = Source("", session.partition, session.last_offset, now, b"",
                        session.last_index)
        try:
            report = engine.finish()
        except ValidationError as error:
            self._collect(key, session, engine.drain(), source, result)
            self._reject(result, RejectReason.UNREPORTABLE, error, source,
                         session_id=session_id, clinic_id=_clinic(key))
            ended_by = "unreportable"
        else:
            events = self._collect(key, session, engine.drain(), source, result)
            end = engine.final_end_ms or 0
            if events:
                self._publish_quality(key, session, end, end, report, events, source, result)
            record = report_record(session_id, _clinic(key), end, engine.start_ms or 0,
                                   ended_by, engine.participants(), report)
            self._emit(result, "reports", key.encode(), record, session.partition,
                       ((REPORT_POSITION_HEADER, report_position(session)),))
        result.closed[ended_by] += 1
        closed = ClosedSession(session_id, session.partition, session.last_offset,
                               session.last_index, now, ended_by)
        result.writes[key] = (session.partition, closed)
        return closed

    def _unreadable(self, key: str, state: UnreadableState, now: int,
                    result: BatchResult) -> ClosedSession:
        """Close a session whose persisted state cannot be restored: its events so far are
        lost to this worker, so no report can be made. The entry goes to the dead-letter
        topic (bytes base64, truncated like any raw input) and a closed marker replaces it,
        so later events of the session are rejected as ``session_state``, not applied to a
        session started afresh half-way (which would publish a wrong report)."""
        result.unreadable += 1
        source = Source(CHECKPOINT_SOURCE, state.partition, -1, now, state.data)
        error = ValidationError("checkpoint", f"session state unreadable: {state.error} "
                                f"({len(state.data)} bytes, sha256 {state.digest})")
        clinic_id, _, session_id = key.partition(" ")
        self._reject(result, RejectReason.UNREPORTABLE, error, source,
                     session_id=session_id, clinic_id=clinic_id)
        result.closed["unreportable"] += 1
        closed = ClosedSession(session_id, state.partition, -1, -1, now, "unreportable")
        result.writes[key] = (state.partition, closed)
        return closed

    # --- output helpers ---------------------------------------------------------------------

    def _reject(self, result: BatchResult, reason: RejectReason, error: ValidationError,
                source: Source, *, session_id: str | None = None, clinic_id: str | None = None,
                event_time_ms: int | None = None) -> None:
        result.rejected[reason.value] += 1
        record = rejected_record(reason, error, source, session_id=session_id,
                                 clinic_id=clinic_id, event_time_ms=event_time_ms,
                                 max_raw_bytes=self.config.max_dlq_raw_bytes)
        key = session_key(clinic_id, session_id) if session_id is not None \
            and clinic_id is not None else None
        self._emit(result, "dlq", key, record, source.partition)

    @staticmethod
    def _emit(result: BatchResult, topic: OutputTopic, key: bytes | None,
              record: dict[str, Any], partition: int,
              headers: tuple[tuple[str, bytes], ...] = ()) -> None:
        result.outputs.append(OutputRecord(topic, key, orjson.dumps(record), partition,
                                           headers))


def _clinic(key: str) -> str:
    """The clinic of a session key (models/topics.py): the session's clinic on every output,
    also before its session.start is applied."""
    return key.partition(" ")[0]


def event_of(record: InputRecord) -> Event | None:
    """The wire event in a record, or ``None`` when it is not one (for tools and tests)."""
    try:
        return parse_event(decode_json(record.value))
    except ValidationError:
        return None
