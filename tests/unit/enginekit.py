"""Unit tier: hand-built sessions checked against the metric contract (shared/METRICS.md).

Run the tier from the project root with::

    .venv/bin/pytest tests/unit          # add -q for a terse summary

Every expected number in these tests is computed by hand from METRICS.md (the arithmetic is in
a comment next to it), never by calling the engine. Tests that the engine currently fails are
marked ``xfail(strict=True, reason="engine bug: ...")`` so they flip to an error once fixed.

The small builders the test modules import live in ``enginekit`` (``from enginekit import ...``;
a name of its own, since every tier has a ``conftest`` and two of them imported by that name
in one run collide):
wire-event dicts (METRICS.md §9), :func:`session` to wrap a body of events between a
``session.start`` and a ``session.end``, and :func:`run_session` to push them through a
:class:`~models.session.SessionEngine` and collect the final report and every output.
Defaults: session ``s1`` from 0 ms to 60 000 ms, therapist ``t`` and client ``c``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from models.classified import AlertEvent, Classified, Rejection
from models.config import EngineConfig
from models.events import parse_event
from models.session import SessionEngine

Event = dict[str, Any]
Report = dict[str, Any]

SID = "s1"
CLINIC = "c1"
TC: tuple[tuple[str, str], ...] = (("t", "therapist"), ("c", "client"))
END_MS = 60_000


# --- wire-event builders (METRICS.md §9) ----------------------------------------------------


def start(ts_ms: int = 0, participants: Sequence[tuple[str, str]] = TC) -> Event:
    return {
        "type": "session.start", "session_id": SID, "ts_ms": ts_ms, "clinic_id": CLINIC,
        "participants": [{"participant_id": p, "role": r} for p, r in participants],
    }


def end(ts_ms: int) -> Event:
    return {"type": "session.end", "session_id": SID, "ts_ms": ts_ms}


def speech(pid: str, start_ms: int, end_ms: int) -> Event:
    return {"type": "speech", "session_id": SID, "participant_id": pid,
            "start_ms": start_ms, "end_ms": end_ms}


def activity(pid: str, seq: int, start_ms: int, *, frame_ms: int = 20, **data: Any) -> Event:
    """``data``: ``voiced="0110"`` or ``levels=[...]`` (optionally ``vad="01-"``)."""
    return {"type": "activity", "session_id": SID, "participant_id": pid, "seq": seq,
            "start_ms": start_ms, "frame_ms": frame_ms, **data}


def network(pid: str, ts_ms: int, rtt_ms: float, **extra: Any) -> Event:
    return {"type": "network", "session_id": SID, "participant_id": pid, "ts_ms": ts_ms,
            "rtt_ms": rtt_ms, **extra}


def join(pid: str, role: str, ts_ms: int) -> Event:
    return {"type": "participant.join", "session_id": SID, "participant_id": pid,
            "role": role, "ts_ms": ts_ms}


def state(change: str, pid: str, ts_ms: int) -> Event:
    """``change``: ``mute``, ``unmute`` or ``leave``."""
    return {"type": f"participant.{change}", "session_id": SID, "participant_id": pid,
            "ts_ms": ts_ms}


def voice(pid: str, ts_ms: int, speaking: bool) -> Event:
    return {"type": "voice", "session_id": SID, "participant_id": pid, "ts_ms": ts_ms,
            "speaking": speaking}


def levels(pid: str, samples: Sequence[tuple[int, float]], scale: str = "dbov") -> Event:
    return {"type": "levels", "session_id": SID, "participant_id": pid, "scale": scale,
            "samples": [list(sample) for sample in samples]}


def event_time(event: Event) -> int:
    if event["type"] == "levels":
        return int(event["samples"][0][0])
    return int(event["start_ms"] if event["type"] in ("speech", "activity") else event["ts_ms"])


def known_time(event: Event) -> int:
    """When a source can send ``event`` (§9): a segment's end, a batch's last frame."""
    if event["type"] == "speech":
        return int(event["end_ms"])
    return int(parse_event(event).end_ms) if event["type"] == "activity" else event_time(event)


def session(
    *body: Event,
    end_ms: int | None = END_MS,
    participants: Sequence[tuple[str, str]] = TC,
    start_ms: int = 0,
) -> list[Event]:
    """``session.start`` + ``body`` in the order a live source sends it, by known time (a
    segment when it ends; stable, METRICS.md §9) + ``session.end`` (unless None)."""
    events = [start(start_ms, participants), *sorted(body, key=known_time)]
    if end_ms is not None:
        events.append(end(end_ms))
    return events


# --- running the engine ----------------------------------------------------------------------


def run_session(
    events: Iterable[Event], *, advance_step_ms: int = 0, **config_overrides: Any
) -> tuple[Report, list[Any]]:
    """Parse and ingest ``events`` in the given order, finish; return (report, outputs)."""
    config = EngineConfig().with_overrides(**config_overrides)
    engine = SessionEngine(SID, config, advance_step_ms=advance_step_ms)
    outputs: list[Any] = []
    for event in events:
        engine.ingest(parse_event(event))
        outputs.extend(engine.drain())
    report = engine.finish()
    outputs.extend(engine.drain())
    return report, outputs


def run(
    *body: Event,
    end_ms: int | None = END_MS,
    participants: Sequence[tuple[str, str]] = TC,
    **config_overrides: Any,
) -> tuple[Report, list[Any]]:
    """Shorthand: :func:`run_session` of :func:`session` ``(*body, ...)``."""
    return run_session(session(*body, end_ms=end_ms, participants=participants),
                       **config_overrides)


# --- reading outputs ---------------------------------------------------------------------------


def classified(outputs: Iterable[Any], kind: str) -> list[dict[str, Any]]:
    """Details of the classified outputs of one kind, in emission order."""
    return [o.detail for o in outputs if isinstance(o, Classified) and o.kind == kind]


def ipus(outputs: Iterable[Any], pid: str | None = None) -> list[tuple[str, int, int, bool]]:
    """``(participant, start, end, backchannel)`` of every IPU, sorted by start."""
    found = [(d["participant_id"], d["start_ms"], d["end_ms"], d["backchannel"])
             for d in classified(outputs, "ipu") if pid is None or d["participant_id"] == pid]
    return sorted(found, key=lambda x: (x[1], x[0]))


def alert_events(outputs: Iterable[Any]) -> list[tuple[str, int]]:
    """``(kind, ts_ms)`` of alert outputs, e.g. ``("long_silence.cleared", 9000)``."""
    return [(o.kind, o.ts_ms) for o in outputs if isinstance(o, AlertEvent)]


def rejections(outputs: Iterable[Any]) -> list[Rejection]:
    return [o for o in outputs if isinstance(o, Rejection)]


def role(report: Report, name: str) -> dict[str, Any]:
    return report["roles"][name]  # type: ignore[no-any-return]
