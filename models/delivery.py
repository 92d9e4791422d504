"""Delivery order of input records: each partition's records applied exactly once, in offset
order, without holes (issue "Streaming workers"; docs/streaming.md, "Delivery guarantees").

The workers' exactly-once results rest on one assumption: a partition's records reach the
processor in offset order and none is skipped. A session's restored state remembers only the
newest input position it applied, and a redelivered record at or before it is skipped as
already applied (:meth:`models.stream_session.StreamSession.replayed`); a record that was
skipped once and redelivered after a later one was applied would be skipped for good. Faust
does not quite keep the promise around a rebalance: records of a partition taken back were
seen delivered twice, out of order, and with one missing (the rebalance test caught a lost
activity batch about one run in eight on a busy machine). Its commit also picks the end of the
first run of acknowledged offsets, even when that run starts after a hole.

:class:`DeliveryGuard` enforces the assumption at the processor's door. Per partition it knows
the next offset to apply, from the partition's committed offset on when the worker knows it
(:meth:`DeliveryGuard.start`; a hole before the first record delivered is a hole too): a record
before it was applied already and is dropped; a record
after it means records are missing, so it is held back (dropped; the worker seeks the
partition back to the missing offset, and everything from there is delivered again). A gap
that persists for ``patience_ms`` after the seek is real (offsets without records: Kafka
transaction markers, records removed by retention) and is accepted. The next offset per
partition is also the highest offset a worker may commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum


class Verdict(str, Enum):
    APPLY = "apply"  # the next record of its partition
    APPLIED_ALREADY = "applied_already"  # before the next offset: delivered again
    MISSING_BEFORE = "missing_before"  # after a hole: held back until the hole is filled
    # After a hole that stayed patience_ms after the seek: applied, the hole taken as a gap
    # in the log (retention, transaction markers). Rare, and logged: records lost otherwise.
    AFTER_GAP = "after_gap"


@dataclass(slots=True)
class DeliveryGuard:
    """Per-partition delivery bookkeeping of one worker (see the module docstring)."""

    patience_ms: int = 5_000
    # Partition -> next offset to apply; set by start() after an assignment (the committed
    # offset), else by the partition's first record.
    _next: dict[int, int] = field(default_factory=dict)
    # Partition -> (missing offset sought, when the hole was found in ms).
    _seeking: dict[int, tuple[int, int]] = field(default_factory=dict)

    def check(self, partition: int, offset: int, now_ms: int) -> tuple[Verdict, int | None]:
        """What to do with the record at ``offset`` of ``partition``, seen at ``now_ms`` (any
        monotonic clock in ms), and the offset to seek the partition back to, if a new hole
        was found (for ``AFTER_GAP``: the first offset of the gap given up on). ``APPLY`` and
        ``AFTER_GAP`` advance the partition."""
        expected = self._next.get(partition)
        if expected is None or offset == expected:
            self._apply(partition, offset)
            return Verdict.APPLY, None
        if offset < expected:
            return Verdict.APPLIED_ALREADY, None
        sought = self._seeking.get(partition)
        if sought is None or sought[0] != expected:
            self._seeking[partition] = (expected, now_ms)
            return Verdict.MISSING_BEFORE, expected
        if now_ms - sought[1] >= self.patience_ms:
            self._apply(partition, offset)  # the broker has no record there
            return Verdict.AFTER_GAP, expected
        return Verdict.MISSING_BEFORE, None

    def start(self, partition: int, offset: int) -> None:
        """``partition`` was just assigned and starts at ``offset`` (its committed offset):
        a first record after it comes after a hole. Without this, the first record delivered
        starts the partition, whatever it is (streams/start_offsets.py says why that is not
        enough). No effect once the partition has started."""
        self._next.setdefault(partition, offset)

    def _apply(self, partition: int, offset: int) -> None:
        self._next[partition] = offset + 1
        self._seeking.pop(partition, None)

    def next_offset(self, partition: int) -> int | None:
        """The next offset to apply: the highest offset that may be committed."""
        return self._next.get(partition)

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions revoked: a partition assigned again starts afresh (:meth:`start`)."""
        for partition in partitions:
            self._next.pop(partition, None)
            self._seeking.pop(partition, None)
