"""Order and lateness of a session's events (METRICS.md §9, "Order and lateness").

Two times matter for every event:

- its *start* (:func:`event_time`): where it takes effect on the session clock, ``start_ms``
  for ``speech``/``activity``, a ``levels`` batch's first sample and ``ts_ms`` otherwise.
  Events are applied in canonical order of start (:func:`canonical_key`), so the result never
  depends on arrival order;
- its *known time* (:func:`known_time`): when a source could have sent it, ``end_ms`` for
  ``speech``, the end of the last frame for ``activity``, the last sample of ``levels`` and
  ``ts_ms`` otherwise (``voice`` included: a speaking-state change spans nothing). Lateness is
  judged on known time: a segment sent when it ends is on time, however long it is.

``span_ms`` (known time - start) is bounded by ``max_segment_ms``; that bound is what lets the
engine know when every event starting before a given time has arrived (see
:mod:`models.session`).
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from hashlib import blake2b
from typing import Any

from models.events import (
    Activity,
    Event,
    Levels,
    Network,
    ParticipantJoin,
    ParticipantState,
    SessionStart,
    Speech,
    Voice,
)

# Canonical application order among events at the same ms.
RANK = {
    "session.start": 0,
    "participant.join": 1,
    "participant.unmute": 2,
    "participant.mute": 3,
    "network": 4,
    "speech": 5,
    "activity": 6,
    "voice": 7,
    "levels": 8,
    "participant.leave": 9,
    "session.end": 10,
}
_LEVELS_RANK = RANK["levels"]


def event_time(event: Event) -> int:
    """The time (ms) an event takes effect and is ordered by: its start, or its ``ts_ms``."""
    if isinstance(event, Activity | Speech):
        return event.start_ms
    if isinstance(event, Levels):
        return event.first_ms
    return event.ts_ms


def known_time(event: Event) -> int:
    """When a source could have sent ``event`` (ms, session clock): what lateness is judged
    on (§9). ``end_ms`` for ``speech``, the end of the last frame for ``activity``."""
    if isinstance(event, Activity | Speech):
        return event.end_ms
    if isinstance(event, Levels):
        return event.last_ms
    return event.ts_ms


def start_field(event: Event) -> str:
    """The wire field holding :func:`event_time` (for rejection reasons)."""
    if isinstance(event, Levels):
        return "samples[0][0]"
    return "start_ms" if isinstance(event, Activity | Speech) else "ts_ms"


def known_field(event: Event) -> str:
    """The wire field that fixes :func:`known_time`: ``end_ms`` of a segment; an activity
    batch's end follows from its ``start_ms`` (and frame count)."""
    if isinstance(event, Speech):
        return "end_ms"
    if isinstance(event, Levels):
        return f"samples[{len(event.dbov) - 1}][0]"
    return start_field(event)


def span_field(event: Event) -> str:
    """The wire field that makes an event's span too long."""
    if isinstance(event, Activity):
        return "voiced" if event.voiced is not None else "levels"
    if isinstance(event, Levels):
        return "samples"
    return "end_ms"


def canonical_key(event: Event) -> tuple[Any, ...]:
    """A total order on distinct events; equal keys mean the same event (a duplicate)."""
    kind = event.type
    if isinstance(event, Activity):
        return (event.start_ms, RANK["activity"], event.participant_id, event.seq)
    if isinstance(event, Speech):
        return (event.start_ms, RANK["speech"], event.participant_id, event.end_ms)
    if isinstance(event, Voice):
        return (event.ts_ms, RANK["voice"], event.participant_id, event.speaking)
    if isinstance(event, Levels):
        # An 8-byte digest of the samples instead of the samples (BLAKE2b: two different
        # batches of one participant starting at the same ms would have to collide, about
        # 2^-64): a held batch's key stays small, and a compact run (models/held_runs.py)
        # need not keep its head batch built to stand in the heap.
        return (event.first_ms, _LEVELS_RANK, event.participant_id, levels_digest(event))
    if isinstance(event, Network):
        # The readings enter as one hash of numbers (stable across processes, unlike str
        # hashes): a small key that still orders conflicting readings deterministically.
        content = tuple(-1.0 if v is None else v for v in (
            event.rtt_ms, event.jitter_ms, event.loss_pct, event.jitter_buffer_ms))
        return (event.ts_ms, 4, event.participant_id, hash(content))
    if isinstance(event, SessionStart):
        roster = tuple((p.participant_id, p.role) for p in event.participants)
        return (event.ts_ms, 0, event.clinic_id, roster, event.max_segment_ms or 0,
                event.exclusive)
    if isinstance(event, ParticipantJoin):
        return (event.ts_ms, 1, event.participant_id, event.role)
    if isinstance(event, ParticipantState):
        return (event.ts_ms, RANK[kind], event.participant_id)
    return (event.ts_ms, RANK["session.end"])


SeenKey = tuple[Any, ...] | bytes


def levels_digest(event: Levels) -> bytes:
    """The 8-byte digest of a ``levels`` batch's samples (times and levels) in its key."""
    return blake2b(event.times + event.dbov, digest_size=8).digest()


def dedupe_key(key: tuple[Any, ...]) -> SeenKey:
    """What a session remembers an accepted event by, to recognise a copy (§9): its
    canonical key, except a ``levels`` batch's, which is one bytes object: its first sample's
    time (8 bytes), the digest of its samples (:func:`levels_digest`) and the participant id,
    a third of the memory of the key's tuple. Idempotent on the checkpoint forms
    (:func:`seen_key_to_state`, which is the canonical key, and format 4's samples), so keys
    read from checkpoints convert too."""
    if len(key) == 4 and key[1] == _LEVELS_RANK and isinstance(key[3], bytes):
        first, _, pid, digest = key
        return _levels_seen(first, pid, digest)
    if len(key) == 5 and key[1] == _LEVELS_RANK:  # format 4: (first, rank, pid, times, dbov)
        first, _, pid, times, dbov = key
        return _levels_seen(first, pid, blake2b(times + dbov, digest_size=8).digest())
    return key


def _levels_seen(first: int, pid: str, digest: bytes) -> bytes:
    return first.to_bytes(8, "little", signed=True) + digest + pid.encode()


def seen_key_to_state(key: SeenKey) -> list[Any]:
    """A remembered key as checkpoints write it (format 5): its canonical key, a levels
    batch's ``[first_ms, rank, participant_id, digest]``."""
    if isinstance(key, bytes):
        first = int.from_bytes(key[:8], "little", signed=True)
        return [first, _LEVELS_RANK, key[16:].decode(), key[8:16]]
    return list(key)



def in_ranges(ranges: array[int], value: int) -> bool:
    """Whether ``value`` is in one of the sorted disjoint inclusive ranges (flattened, see
    :func:`add_to_ranges`): an odd count of bounds at or below it means inside a range, and
    an even one means inside only if the last of them is the range's high end itself."""
    count = bisect_right(ranges, value)
    return bool(count & 1) or (count > 0 and ranges[count - 1] == value)


def add_to_ranges(ranges: array[int], value: int) -> None:
    """Insert into sorted disjoint inclusive ranges, flattened (low, high, low, high, ...),
    merging neighbours: seqs mostly arrive contiguous, so this stays one range."""
    if len(ranges) == 2 and value == ranges[1] + 1:  # the next seq of the only range
        ranges[1] = value
        return
    for i in range(0, len(ranges), 2):
        low, high = ranges[i], ranges[i + 1]
        if value == high + 1:
            ranges[i + 1] = value
            if i + 2 < len(ranges) and ranges[i + 2] == value + 1:
                ranges[i + 1] = ranges[i + 3]
                del ranges[i + 2 : i + 4]
            return
        if value == low - 1:
            ranges[i] = value
            return
        if value < low:
            ranges[i:i] = array("q", (value, value))
            return
    ranges.extend((value, value))
