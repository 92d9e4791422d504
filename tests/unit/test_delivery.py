"""The delivery guard (models/delivery.py): each partition's records applied once, in order,
without holes, whatever order the consumer hands them over in."""

from __future__ import annotations

from models.delivery import DeliveryGuard, Verdict

APPLY, AGAIN, HELD = Verdict.APPLY, Verdict.APPLIED_ALREADY, Verdict.MISSING_BEFORE


def test_in_order_records_are_applied_and_bound_the_commit() -> None:
    guard = DeliveryGuard()
    assert guard.next_offset(0) is None
    assert [guard.check(0, o, 0) for o in (151, 152, 153)] == [(APPLY, None)] * 3
    assert guard.next_offset(0) == 154
    assert guard.check(1, 7, 0) == (APPLY, None)  # partitions are independent
    assert guard.next_offset(0) == 154 and guard.next_offset(1) == 8


def test_a_record_delivered_again_is_dropped() -> None:
    guard = DeliveryGuard()
    for offset in range(120, 151):
        guard.check(2, offset, 0)
    assert guard.check(2, 150, 0) == (AGAIN, None)
    assert guard.next_offset(2) == 151


def test_a_hole_holds_later_records_back_until_it_is_filled() -> None:
    """What the rebalance test saw: 173 delivered while 172 never was."""
    guard = DeliveryGuard()
    for offset in range(151, 172):
        guard.check(0, offset, 0)
    assert guard.check(0, 173, 10) == (HELD, 172)  # seek back to 172, once
    assert guard.check(0, 174, 11) == (HELD, None)
    assert guard.next_offset(0) == 172  # nothing past the hole may be committed
    assert guard.check(0, 172, 20) == (APPLY, None)  # redelivered after the seek
    assert guard.check(0, 173, 21) == (APPLY, None)
    assert guard.next_offset(0) == 174


def test_a_hole_that_stays_after_the_seek_is_accepted_as_real() -> None:
    """Offsets without records (transaction markers, retention) must not stall a partition."""
    guard = DeliveryGuard(patience_ms=5_000)
    guard.check(3, 40, 0)
    assert guard.check(3, 45, 1_000) == (HELD, 41)
    assert guard.check(3, 45, 5_999) == (HELD, None)
    assert guard.check(3, 45, 6_000) == (Verdict.AFTER_GAP, 41)  # the gap, for the log
    assert guard.next_offset(3) == 46


def test_a_partition_assigned_again_starts_at_its_first_record() -> None:
    guard = DeliveryGuard()
    guard.check(1, 10, 0)
    guard.forget([1])
    assert guard.next_offset(1) is None
    assert guard.check(1, 4, 0) == (APPLY, None)  # replay from an older committed offset


def test_a_partition_started_at_its_committed_offset_sees_a_hole_before_its_first_record(
        ) -> None:
    """What Faust can do at a take-over (streams/start_offsets.py): drop the first records
    after the committed offset (its buffers cleared after its seek) and deliver 220 first.
    Started at the committed offset, the guard seeks back to it; started by the first record
    delivered, it would lose 212-219 for good."""
    guard = DeliveryGuard()
    guard.start(2, 212)
    assert guard.next_offset(2) == 212  # no commit past the committed offset meanwhile
    assert guard.check(2, 220, 0) == (HELD, 212)
    assert guard.check(2, 212, 5) == (APPLY, None)
    unguarded = DeliveryGuard()
    assert unguarded.check(2, 220, 0) == (APPLY, None)


def test_start_does_not_move_a_partition_already_started() -> None:
    guard = DeliveryGuard()
    guard.check(0, 30, 0)
    guard.start(0, 12)
    assert guard.next_offset(0) == 31
    guard.forget([0])
    guard.start(0, 12)
    assert guard.check(0, 11, 0) == (AGAIN, None)  # before the committed offset: applied
    assert guard.check(0, 12, 0) == (APPLY, None)
