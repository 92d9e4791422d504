"""When the recovery watchdog fetches a changelog partition again (streams/recovery_watchdog.py):
only a partition still behind its high watermark whose applied offset has not moved for the
stall time, from the first offset it still needs, and again every stall time while stuck."""

from __future__ import annotations

import asyncio
from collections import namedtuple

from streams.recovery_watchdog import RecoveryWatchdog, StallDetector

A, B = "changelog-0", "changelog-1"


def test_a_partition_that_stops_short_of_its_high_watermark_is_fetched_again_after_the_stall():
    detector = StallDetector(stall_s=10)
    highwaters = {A: 5}
    assert detector.stalled(0.0, {A: 3}, highwaters) == []
    assert detector.stalled(9.9, {A: 3}, highwaters) == []
    assert detector.stalled(10.0, {A: 3}, highwaters) == [(A, 4)]


def test_a_partition_that_keeps_moving_is_left_alone_however_long_recovery_takes():
    detector = StallDetector(stall_s=10)
    for step in range(100):
        assert detector.stalled(step * 5.0, {A: step}, {A: 1_000}) == []


def test_a_caught_up_or_empty_partition_is_never_fetched_again():
    detector = StallDetector(stall_s=1)
    for now in (0.0, 5.0, 50.0):
        # Faust's offsets: -1 = nothing applied, a high watermark of -1 = an empty partition.
        assert detector.stalled(now, {A: 7, B: -1}, {A: 7, B: -1}) == []


def test_nothing_applied_yet_counts_as_offset_minus_one_and_is_fetched_from_zero():
    detector = StallDetector(stall_s=3)
    detector.stalled(0.0, {}, {A: 0})
    assert detector.stalled(3.0, {A: None}, {A: 0}) == [(A, 0)]


def test_a_partition_still_stuck_is_fetched_again_every_stall_time_not_every_look():
    detector = StallDetector(stall_s=10)
    looks = [(now, detector.stalled(now, {A: 2}, {A: 3})) for now in range(0, 31)]
    assert [now for now, due in looks if due] == [10, 20, 30]


def test_progress_after_a_fetch_restarts_the_clock_and_each_partition_has_its_own():
    detector = StallDetector(stall_s=10)
    highwaters = {A: 9, B: 9}
    detector.stalled(0.0, {A: 1, B: 1}, highwaters)
    assert detector.stalled(6.0, {A: 2, B: 1}, highwaters) == []
    assert detector.stalled(10.0, {A: 2, B: 1}, highwaters) == [(B, 2)]
    assert detector.stalled(16.0, {A: 2, B: 1}, highwaters) == [(A, 3)]


def test_reset_forgets_every_clock_for_the_next_recovery():
    detector = StallDetector(stall_s=10)
    detector.stalled(0.0, {A: 1}, {A: 5})
    detector.reset()
    assert detector.stalled(10.0, {A: 1}, {A: 5}) == []
    assert detector.stalled(20.0, {A: 1}, {A: 5}) == [(A, 2)]


class _Recovery:
    def __init__(self) -> None:
        self.in_recovery = True
        self.active_offsets: dict[object, int] = {}
        self.active_highwaters: dict[object, int] = {}


class _Consumer:
    def __init__(self, fail: bool = False) -> None:
        self.seeks: list[tuple[object, int]] = []
        self.fail = fail

    async def seek(self, tp: object, offset: int) -> None:
        if self.fail:
            raise RuntimeError("partition not assigned")
        self.seeks.append((tp, offset))


class _App:
    """What the watchdog reads of a Faust app: its tables' recovery, its consumer and the
    consumer group generation."""

    def __init__(self, consumer: _Consumer) -> None:
        self.tables = type("Tables", (), {"recovery": _Recovery()})()
        self.consumer = consumer
        self.consumer_generation_id = 1


TP = namedtuple("TP", "topic partition")
C3 = TP("rapport-sessions-changelog", 3)


def _watch(app: _App, times: list[float]) -> None:
    watchdog = RecoveryWatchdog(app, stall_s=10)

    async def run() -> None:
        for now in times:
            await watchdog.check(now)

    asyncio.run(run())


def test_the_watchdog_seeks_a_stalled_partition_of_the_recovery_in_progress():
    app = _App(_Consumer())
    recovery = app.tables.recovery
    recovery.active_offsets[C3] = -1
    recovery.active_highwaters[C3] = 0
    _watch(app, [0.0, 5.0, 10.0])
    assert app.consumer.seeks == [(C3, 0)]


def test_outside_a_recovery_or_across_a_rebalance_the_clocks_start_again():
    app = _App(_Consumer())
    recovery = app.tables.recovery
    recovery.active_offsets[C3] = 4
    recovery.active_highwaters[C3] = 9
    watchdog = RecoveryWatchdog(app, stall_s=10)

    async def run() -> None:
        await watchdog.check(0.0)
        recovery.in_recovery = False
        await watchdog.check(6.0)  # recovery over: nothing is watched
        recovery.in_recovery = True
        await watchdog.check(12.0)  # a new recovery: its clock starts now
        app.consumer_generation_id = 2
        await watchdog.check(21.0)  # and again after a rebalance
        await watchdog.check(30.0)
        assert app.consumer.seeks == []
        await watchdog.check(31.0)
        assert app.consumer.seeks == [(C3, 5)]

    asyncio.run(run())


def test_a_seek_the_consumer_refuses_is_logged_not_raised(caplog):
    app = _App(_Consumer(fail=True))
    recovery = app.tables.recovery
    recovery.active_offsets[C3] = 0
    recovery.active_highwaters[C3] = 2
    _watch(app, [0.0, 10.0])
    assert "could not seek rapport-sessions-changelog 3" in caplog.text
    assert "fetching it again from 1" in caplog.text
