"""Sessions changed since their last checkpoint, and how far offsets may be committed
(issue "Streaming workers"; docs/streaming.md, "Delivery guarantees").

A worker does not write a session's state to its table after every batch: it marks the
session dirty and writes it about once per checkpoint interval (Kafka Streams' record cache,
in effect).
Committing an offset promises that every record before it is reflected in the table, so a
partition's commit may not pass the first record a still-unwritten change came from.

:class:`DirtySessions` keeps, per dirty session, the state to write and ``since``: the lowest
offset of the first batch that changed the session after its last write (a lower bound of the
first unwritten record, which is all the ceiling needs). A partition's *commit ceiling* is
then the lowest ``since`` of its dirty sessions, capped by the next record to apply.

Why not write everything and then commit: a busy worker's sessions change every second, and
checkpointing 2,000 of them takes about half a second of CPU. Writing them while batches keep
running, and committing only up to the oldest change still unwritten, needs neither a second
pass over the sessions a batch touched meanwhile nor holding the batches off while it writes;
the committed offset just lags by about a checkpoint interval (replayed after a crash, and
recognised as already applied by the states that include it).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Dirty(Generic[S]):
    """One dirty session: its partition, the state to write, and the lowest offset its
    unwritten changes may come from. A new entry per change, so a writer can tell whether
    the entry it picked is still the newest (identity)."""

    partition: int
    state: S
    since: int


class DirtySessions(Generic[S]):
    """Dirty sessions of one worker, grouped by input partition (see the module docstring)."""

    def __init__(self) -> None:
        self._by_partition: dict[int, dict[str, Dirty[S]]] = {}
        self._partition_of: dict[str, int] = {}
        # Entries written but not acknowledged yet, and for a session changed again since its
        # write, the offset the first of those later changes came from (see written()).
        self._writing: dict[str, Dirty[S]] = {}
        self._after: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._partition_of)

    def mark(self, session_id: str, partition: int, state: S, offset: int) -> None:
        """``session_id`` changed by a batch whose records of ``partition`` start at
        ``offset``; ``state`` is what to write (it may be ``None`` for a deletion)."""
        entries = self._by_partition.setdefault(partition, {})
        previous = entries.get(session_id)
        if previous is not None and self._writing.get(session_id) is previous:
            self._after.setdefault(session_id, offset)
        # Replacing a key keeps its place: entries stay in the order they became dirty.
        since = offset if previous is None else min(previous.since, offset)
        entries[session_id] = Dirty(partition, state, since)
        self._partition_of[session_id] = partition

    def get(self, session_id: str) -> Dirty[S] | None:
        partition = self._partition_of.get(session_id)
        return None if partition is None else self._by_partition[partition].get(session_id)

    def entries(self) -> list[tuple[str, Dirty[S]]]:
        """Every dirty session now, as a list (it stays valid while the set changes)."""
        return [item for entries in self._by_partition.values() for item in entries.items()]

    def due(self, share: float) -> list[tuple[str, Dirty[S]]]:
        """The sessions to write now when each is to be written about once per ``1 / share``
        rounds: of every partition, the ``share`` of its dirty sessions (at least one) that
        became dirty first, so every partition's ceiling moves on at each round."""
        chosen: list[tuple[str, Dirty[S]]] = []
        for entries in self._by_partition.values():
            count = min(len(entries), max(1, math.ceil(len(entries) * share)))
            chosen.extend(itertools.islice(entries.items(), count))
        return chosen

    def writing(self, session_id: str, entry: Dirty[S]) -> None:
        """``entry``'s state was just handed to the producer (a write of the newest state)."""
        self._writing[session_id] = entry
        self._after.pop(session_id, None)

    def written(self, session_id: str, entry: Dirty[S]) -> bool:
        """The write of ``entry`` is acknowledged. Forget ``session_id`` if ``entry`` is still
        its newest change; if it changed again since, it stays dirty, but only from the first
        of those later changes on (``False``). Without that, a session changed by every batch
        (a worker catching up) would never be clean and its partition's commits would stop."""
        self._writing.pop(session_id, None)
        after = self._after.pop(session_id, None)
        partition = self._partition_of.get(session_id)
        if partition is None:
            return False
        entries = self._by_partition[partition]
        current = entries.get(session_id)
        if current is entry:
            del entries[session_id]
            del self._partition_of[session_id]
            return True
        if current is not None and after is not None:
            del entries[session_id]  # to the back: its oldest unwritten change is recent
            entries[session_id] = Dirty(partition, current.state, after)
        return False

    def discard(self, session_id: str) -> None:
        """Forget ``session_id`` whatever its entry (written by other means)."""
        partition = self._partition_of.pop(session_id, None)
        if partition is not None:
            self._by_partition[partition].pop(session_id, None)
        self._writing.pop(session_id, None)
        self._after.pop(session_id, None)

    def forget(self, partitions: Iterable[int]) -> None:
        """Forget the dirty sessions of ``partitions`` (handed over on revoke)."""
        for partition in set(partitions):
            for session_id in self._by_partition.pop(partition, {}):
                del self._partition_of[session_id]
                self._writing.pop(session_id, None)
                self._after.pop(session_id, None)

    def ceiling(self, partition: int, next_offset: int | None) -> int | None:
        """The highest offset of ``partition`` a commit may name now: the lowest offset an
        unwritten change may come from, and never past ``next_offset`` (the next record to
        apply); ``None`` when neither limits it."""
        entries = self._by_partition.get(partition)
        lowest = min((entry.since for entry in entries.values()), default=None) \
            if entries else None
        if lowest is None:
            return next_offset
        return lowest if next_offset is None else min(lowest, next_offset)
