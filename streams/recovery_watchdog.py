"""A watchdog over table recovery: a changelog partition that stops moving is fetched again
(docs/streaming.md, "Recovery stalls").

After every assignment, Faust's recovery reads each active changelog partition up to the high
watermark it measured when it started, and only then lets the worker process its input. It
has no timeout. A changelog record that was fetched but never applied leaves it waiting for
ever: the worker owns its partitions, heartbeats, answers ``/healthz``, and processes nothing.
A CI run saw it once (2026-12-05, ``test_two_workers_split_partitions_and_one_takes_over_when
_the_other_stops``): the worker taking over waited two minutes for the one record of one
changelog partition, logging Faust's "No event received for active tp ... since recovery
start" every five seconds, until the test gave up. Over 50 runs of that test here since,
with the machine loaded and not, did not show it again, so how the record went missing was
not found. Faust's own code has two ways to lose one: its changelog queue is emptied
whenever flow control resumes (``FlowControlEvent.resume`` clears every queue, and the
changelog queue is created with ``clear_on_resume``), and its ``getmany`` drops the rest of
a fetched batch when the flow stops, after the consumer's position has moved past it.

This watchdog looks every ``interval_s``. An active changelog partition still behind its high
watermark whose applied offset has not moved for ``stall_s`` is sought back to the first
offset recovery still needs, which makes the consumer fetch it again. Records applied already
come again and Faust skips them (it applies an offset only once), so a seek on a partition
that was merely slow costs a re-read, never state. ``stall_s`` 0 turns the watchdog off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mode import Service

from streams import metrics

log = logging.getLogger(__name__)


@dataclass(slots=True)
class StallDetector:
    """Which partitions of a recovery have stalled: behind their high watermark, their
    applied offset unchanged for ``stall_s``. State and time are arguments; each call gives
    the partitions to fetch again and the offset to fetch each from, and starts their clock
    again, so a partition still stuck is fetched again every ``stall_s``."""

    stall_s: float
    # Per partition: the applied offset last seen, and since when it has not moved.
    _since: dict[Hashable, tuple[int, float]] = field(default_factory=dict)

    def stalled(self, now: float, applied: Mapping[Any, int | None],
                highwaters: Mapping[Any, int | None]) -> list[tuple[Any, int]]:
        """Offsets are Faust's: ``applied`` the last offset applied (-1 for none),
        ``highwaters`` the last offset recovery must reach (-1 for an empty partition)."""
        due: list[tuple[Any, int]] = []
        since: dict[Hashable, tuple[int, float]] = {}
        for tp, highwater in highwaters.items():
            offset = applied.get(tp)
            offset = -1 if offset is None else offset
            if highwater is None or offset >= highwater:
                continue  # caught up: nothing to wait for
            seen = self._since.get(tp)
            start = seen[1] if seen is not None and seen[0] == offset else now
            if now - start >= self.stall_s:
                due.append((tp, offset + 1))
                start = now
            since[tp] = (offset, start)
        self._since = since
        return due

    def reset(self) -> None:
        """Forget every partition (a recovery ended or another one began)."""
        self._since.clear()


class RecoveryWatchdog(Service):
    """Runs a :class:`StallDetector` over ``app``'s table recovery while it is in progress
    and seeks each stalled partition back (module docstring). Started with the app, so it
    watches the first recovery as well as those after a rebalance."""

    def __init__(self, app: Any, stall_s: float, interval_s: float | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.app = app
        self.detector = StallDetector(stall_s)
        self.interval_s = interval_s if interval_s is not None else min(5.0, stall_s / 2)
        self._generation: int | None = None

    @Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            await self.sleep(self.interval_s)
            if self.should_stop:
                break
            try:
                await self.check(time.monotonic())
            except Exception:  # a fault in the watch must not take the worker down with it
                log.exception("recovery watchdog: check failed")

    async def check(self, now: float) -> None:
        """One look at the recovery: seek back whatever has stalled."""
        recovery = self.app.tables.recovery
        generation = self.app.consumer_generation_id
        if generation != self._generation or not recovery.in_recovery:
            self._generation = generation
            self.detector.reset()  # a new recovery starts its partitions' clocks anew
            if not recovery.in_recovery:
                return
        stalled = self.detector.stalled(now, dict(recovery.active_offsets),
                                        dict(recovery.active_highwaters))
        for tp, offset in stalled:
            log.warning("recovery: changelog partition %s %d still needs offsets %d to %d and "
                        "has applied nothing for %.0f s; fetching it again from %d", tp.topic,
                        tp.partition, offset, recovery.active_highwaters[tp],
                        self.detector.stall_s, offset)
            metrics.RECOVERY_REFETCHES.inc()
            try:
                await self.app.consumer.seek(tp, offset)
            except Exception as error:  # a rebalance took it meanwhile: the next recovery
                log.warning("recovery: could not seek %s %d: %r", tp.topic, tp.partition,
                            error)
