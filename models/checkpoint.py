"""Checkpoints of a session's state: a versioned format (issue 15, point 4; docs/streaming.md).

A checkpoint is a session's complete state — buffers, dedupe keys, tallies, alert episodes,
outputs not yet drained — so a worker that restores one and carries on produces exactly the
report and outputs it would have produced without the interruption. The state is not pickled:
every stateful class says what it holds (``to_state()``, a tree of plain values, and a
``from_state()`` classmethod; :mod:`models.state_codec` for events, tags and outputs), so a
checkpoint does not depend on class layouts and a format change is a deliberate act.

**Format** (version :data:`FORMAT_VERSION`)::

    b"RPT"  version (1 byte)  flags (1 byte)  CRC-32 (4 bytes, big-endian)  body

The CRC covers version, flags and body (format 5; the body only before).

``flags`` bit 0 set: the body is zlib-compressed (level 1: a quarter of the raw size at a
third of level 6's time). The CRC makes any corruption a :class:`CheckpointError`, never a
state restored subtly wrong. The body is MessagePack (ints, floats,
strs, bools, bytes, ``None``, arrays, maps) of ``[kind, state]``, ``kind`` naming the class
(``"engine"``: :class:`~models.session.SessionEngine`; ``"open"``/``"closed"``: the workers'
:class:`~models.stream_session.StreamSession` / ``ClosedSession``). Typed integer arrays
(IPU buffers, quantile samples, activity ``seq`` ranges, alert windows) are stored as their
native bytes (little-endian on every platform Rapport runs on). The live copy of an engine
(a cache) is never part of it.

**The rule.** A change to what any ``to_state()`` writes bumps :data:`FORMAT_VERSION` and adds
golden files ``tests/data/checkpoints/v<N>/`` (``scripts/make_checkpoint_goldens.py``); the
goldens of earlier versions stay. An older version is either still read (its goldens keep
loading, checked by ``tests/unit/test_checkpoint_goldens.py``) or refused with
:class:`CheckpointError`, never misread. A worker dead-letters a checkpoint it cannot read and
closes its session as ``unreportable`` (models/processor.py), so an upgrade that refuses old
checkpoints loses those sessions' reports, visibly, instead of crash-looping.

Versions: 1 and 2 were pickles (2: known-time lateness, voice and levels tracks, exact quantile
series); both are refused. 3: this codec. 4 (issue 14 point 4): the engine's state adds
``declared_at`` (when each participant was declared: joins now apply ``allowed_lateness_ms``
after their time instead of at the final horizon); version 3 is still read (:data:`READS`),
its members needing no such time (their joins were applied before any event still to come).
5 (issue 14 point 4, memory of speaking-state and level sources): the engine's state adds
``runs``, each participant's held ``voice`` or ``levels`` events as the columns the engine
keeps them in (models/held_runs.py: a level sample in 3 bytes instead of 9; the engine has
since kept an evenly spaced batch's spacing once, and writes its offsets out), and remembers
a ``levels`` batch for deduplication by an 8-byte digest of its samples instead of the
samples (models/event_order.py, ``dedupe_key``; the engine now keeps such a key as one
bytes object and writes it in this tuple form, ``seen_key_to_state``; it remembers no key for
an event waiting in a run, which recognises its copies, and writes one for each such event
not yet ``2 * allowed_lateness_ms`` old, as before, for readers without that lookup), and its
CRC covers the version and flags bytes too; versions 3 and 4 are still read, their held
events taken into runs and their batch keys digested as they load. (Runs keep narrower
columns than they write since, as the even spacing: found again on load.)

Size and time against the version-2 pickle (simulated sessions; ``tests/unit/test_checkpoint.py``
checks the size ratio): 50 minutes in, frames 10 KB against 39 KB, segments 8 against 31,
voice 10 against 46, levels 82 against 270; ``bench/engine.py`` section 3 (300 sessions 3
minutes in): 7.2 KiB against 46 KiB, about twice pickle's time to encode (1.6-2.1 ms against
0.86 on a loaded machine), 1.3-1.6 times to decode (level-sample sources: half the size, 5
times the time, spent mostly compressing the buffered samples).
"""

from __future__ import annotations

import zlib
from typing import Any, ClassVar, Protocol, TypeVar

import msgpack

from models.errors import RapportError
from models.session import SessionEngine

MAGIC = b"RPT"
FORMAT_VERSION = 5
READS = frozenset({3, 4, 5})  # versions this code restores
_COMPRESSED = 1
_HEADER = 9
# Bodies shorter than this are stored as they are: zlib gains nothing on a closed marker.
_COMPRESS_FROM = 256


class CheckpointError(RapportError):
    """A checkpoint cannot be restored (wrong format, another version, or corrupt)."""


class Checkpointable(Protocol):
    CHECKPOINT_KIND: ClassVar[str]

    def to_state(self) -> Any: ...


T = TypeVar("T")


def dump(state: Checkpointable) -> bytes:
    """A session's state (a :class:`SessionEngine`, or the workers' wrapper around one) as
    bytes. Outputs not yet drained are part of it."""
    body: bytes = msgpack.packb([state.CHECKPOINT_KIND, state.to_state()], use_bin_type=True)
    flags = 0
    if len(body) >= _COMPRESS_FROM:
        body = zlib.compress(body, 1)
        flags |= _COMPRESSED
    header = bytes((FORMAT_VERSION, flags))
    return MAGIC + header + _crc(header, body).to_bytes(4, "big") + body


def _crc(header: bytes, body: bytes) -> int:
    """CRC-32 of version, flags and body; of the body only before format 5 (where a flipped
    version byte could name another readable version)."""
    return zlib.crc32(body, zlib.crc32(header)) if header[0] >= 5 else zlib.crc32(body)


def load(data: bytes, expected: type[T] | tuple[type[T], ...] = SessionEngine) -> T:  # type: ignore[assignment]
    """Restore a state from :func:`dump` output; it must be an instance of ``expected``.
    Raises :class:`CheckpointError` for anything else, whatever is wrong with the bytes."""
    if len(data) < 5 or data[:3] != MAGIC:
        raise CheckpointError("not a Rapport session checkpoint")
    if data[3] not in READS:
        raise CheckpointError(
            f"checkpoint format {data[3]} cannot be read by this version (reads "
            f"{', '.join(map(str, sorted(READS)))})"
        )
    flags = data[4]
    if flags & ~_COMPRESSED:
        raise CheckpointError(f"corrupt checkpoint (unknown flags {flags:#x})")
    body = data[_HEADER:]
    if len(data) < _HEADER or _crc(data[3:5], body) != int.from_bytes(data[5:_HEADER], "big"):
        raise CheckpointError("corrupt checkpoint (CRC mismatch)")
    classes = expected if isinstance(expected, tuple) else (expected,)
    try:
        if flags & _COMPRESSED:
            body = zlib.decompress(body)
        kind, state = msgpack.unpackb(body, raw=False, strict_map_key=False)
        cls = next((c for c in classes if getattr(c, "CHECKPOINT_KIND", None) == kind), None)
        if cls is None:
            raise CheckpointError(f"checkpoint holds a {kind!r} state, not the state "
                                  "expected here")
        restored: T = cls.from_state(state)  # type: ignore[attr-defined]
    except CheckpointError:
        raise
    except Exception as exc:  # any decoding failure means a corrupt checkpoint
        raise CheckpointError(f"corrupt checkpoint ({type(exc).__name__}: {exc})"[:300]) \
            from None
    return restored
