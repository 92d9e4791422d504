"""Checkpoints of a session's state (for the streaming workers' changelog-backed table).

A checkpoint is a session engine's complete state — buffers, dedupe keys, tallies, alert episodes —
so a worker that restores one and carries on produces exactly the report it would have
produced without the interruption. Format: a 5-byte header (``b"RPT"``, format version, pickle
protocol) then the pickled engine. Pickle is the cheapest codec for this object graph and the
data never leaves Rapport's own changelog topics; the version byte makes an incompatible
upgrade fail loudly instead of restoring garbage.

State size is measured by ``bench/engine.py`` (about 5 KiB per session 3 minutes in; the
quantile samples add 2 bytes each as a session goes on).
"""

from __future__ import annotations

import pickle
from typing import TypeVar

from models.errors import RapportError
from models.session import SessionEngine

T = TypeVar("T")

MAGIC = b"RPT"
# 2: known-time lateness, voice and levels tracks, quantile series that hold every sample
# (METRICS.md v1.1 §9, §1, §10; issue 14): a version-1 checkpoint is refused, not misread.
FORMAT_VERSION = 2
_PROTOCOL = 5


class CheckpointError(RapportError):
    """A checkpoint cannot be restored (wrong format, another version, or corrupt)."""


def dump(state: object) -> bytes:
    """A session's state (a :class:`SessionEngine`, or the workers' wrapper around one) as
    bytes. Outputs not yet drained are part of it."""
    return MAGIC + bytes((FORMAT_VERSION, _PROTOCOL)) + pickle.dumps(state, _PROTOCOL)


def load(data: bytes, expected: type[T] | tuple[type[T], ...] = SessionEngine) -> T:  # type: ignore[assignment]
    """Restore a state from :func:`dump` output; it must be an instance of ``expected``."""
    if len(data) < 5 or data[:3] != MAGIC:
        raise CheckpointError("not a Rapport session checkpoint")
    if data[3] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint format {data[3]} cannot be read by this version (reads "
            f"{FORMAT_VERSION}); replay the session's events instead"
        )
    try:
        engine = pickle.loads(data[5:])
    except Exception as exc:  # any unpickling failure means a corrupt checkpoint
        raise CheckpointError(f"corrupt checkpoint ({type(exc).__name__})") from None
    if not isinstance(engine, expected):
        raise CheckpointError(f"checkpoint holds a {type(engine).__name__}, not the state "
                              "expected here")
    return engine
