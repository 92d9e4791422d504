"""Dirty sessions and commit ceilings (models/dirty_sessions.py): a commit never names an
offset whose record's effect is not in a written checkpoint."""

from __future__ import annotations

import random

import pytest

from models.dirty_sessions import DirtySessions


def test_without_dirty_sessions_the_ceiling_is_the_next_record_to_apply() -> None:
    dirty: DirtySessions[str] = DirtySessions()
    assert dirty.ceiling(0, 120) == 120
    assert dirty.ceiling(0, None) is None


def test_the_ceiling_stops_at_the_oldest_unwritten_change_of_its_partition() -> None:
    dirty: DirtySessions[str] = DirtySessions()
    dirty.mark("a", 0, "a1", 10)
    dirty.mark("b", 0, "b1", 14)
    dirty.mark("c", 1, "c1", 3)
    assert dirty.ceiling(0, 20) == 10
    assert dirty.ceiling(1, 20) == 3
    assert dirty.ceiling(0, 8) == 8  # never past the next record to apply
    assert dirty.ceiling(0, None) == 10


def test_a_session_changed_again_keeps_its_first_unwritten_offset_and_its_place() -> None:
    dirty: DirtySessions[str] = DirtySessions()
    dirty.mark("a", 0, "a1", 10)
    dirty.mark("b", 0, "b1", 11)
    dirty.mark("a", 0, "a2", 15)
    entry = dirty.get("a")
    assert entry is not None and entry.state == "a2" and entry.since == 10
    assert [session for session, _ in dirty.entries()] == ["a", "b"]


def test_a_write_of_an_older_entry_leaves_the_session_dirty() -> None:
    dirty: DirtySessions[str] = DirtySessions()
    dirty.mark("a", 0, "a1", 10)
    picked = dirty.get("a")
    assert picked is not None
    dirty.mark("a", 0, "a2", 12)  # a batch changed it after it was picked
    assert not dirty.written("a", picked)
    assert dirty.ceiling(0, 20) == 10
    newest = dirty.get("a")
    assert newest is not None and dirty.written("a", newest)
    assert dirty.ceiling(0, 20) == 20 and len(dirty) == 0


def test_a_session_changed_during_every_write_still_lets_commits_move_on() -> None:
    """A worker catching up changes a busy session in nearly every batch, also while its
    checkpoint is on the way: each acknowledged write must still move the ceiling on to the
    first change made after it, or the partition's commits would stop for good."""
    dirty: DirtySessions[int] = DirtySessions()
    offset = 0
    dirty.mark("busy", 0, offset, offset)
    ceilings = []
    for _ in range(5):
        entry = dirty.get("busy")
        assert entry is not None
        dirty.writing("busy", entry)  # the state as of `offset` is on its way
        offset += 10
        dirty.mark("busy", 0, offset, offset)  # a batch before the acknowledgement
        offset += 10
        dirty.mark("busy", 0, offset, offset)
        assert not dirty.written("busy", entry)
        ceilings.append(dirty.ceiling(0, offset + 1))
    assert ceilings == [10, 30, 50, 70, 90]


def test_due_takes_the_oldest_share_of_every_partition_and_at_least_one() -> None:
    dirty: DirtySessions[str] = DirtySessions()
    for index in range(10):
        dirty.mark(f"p0-{index}", 0, "s", index)
    dirty.mark("p1-0", 1, "s", 0)
    due = [session for session, _ in dirty.due(0.25)]
    assert due == ["p0-0", "p0-1", "p0-2", "p1-0"]  # ceil(10 * 0.25) and max(1, 0.25)


def test_forget_drops_only_the_partitions_handed_over() -> None:
    dirty: DirtySessions[str] = DirtySessions()
    dirty.mark("a", 0, "a1", 10)
    dirty.mark("b", 1, "b1", 4)
    dirty.forget([1])
    assert dirty.get("b") is None and dirty.get("a") is not None
    assert dirty.ceiling(1, 9) == 9


@pytest.mark.parametrize("seed", range(20))
def test_every_offset_below_a_ceiling_is_in_a_written_checkpoint(seed: int) -> None:
    """A worker's life in miniature: batches change sessions, rounds write the due share (some
    of them changed again between being picked and written), commits read ceilings."""
    rng = random.Random(seed)
    sessions = {f"s{i}": i % 3 for i in range(12)}  # session -> partition
    next_offset = {0: 0, 1: 0, 2: 0}
    applied: dict[str, int] = {}  # session -> newest offset applied to it
    checkpointed: dict[str, int] = {}  # session -> newest offset in its written state
    dirty: DirtySessions[int] = DirtySessions()
    records: list[tuple[int, int, str]] = []  # (partition, offset, session)

    def apply(session: str, batch_first: int | None = None) -> None:
        """The next record of the session's partition changes it; the state marked dirty is
        the newest offset applied, from a batch starting at ``batch_first`` (or this record)."""
        partition = sessions[session]
        offset = next_offset[partition]
        next_offset[partition] += 1
        applied[session] = offset
        records.append((partition, offset, session))
        dirty.mark(session, partition, offset, offset if batch_first is None else batch_first)

    for _ in range(300):
        step = rng.random()
        if step < 0.6:  # a batch: a few records of one partition
            partition = rng.randrange(3)
            first = next_offset[partition]
            for _ in range(rng.randint(1, 4)):
                apply(rng.choice([s for s, p in sessions.items() if p == partition]), first)
        else:  # a checkpoint round; a batch may touch a picked session before its write
            picked = dirty.due(rng.choice([0.1, 0.5, 1.0]))
            written = []
            for session, entry in picked:
                if rng.random() < 0.2:
                    apply(session)
                if dirty.get(session) is entry:
                    checkpointed[session] = entry.state
                    dirty.writing(session, entry)
                    written.append((session, entry))
                    if rng.random() < 0.3:  # changed again before the write is acknowledged
                        apply(session)
            for session, entry in written:
                dirty.written(session, entry)
        for partition in range(3):
            ceiling = dirty.ceiling(partition, next_offset[partition])
            assert ceiling is not None
            for record_partition, offset, session in records:
                if record_partition == partition and offset < ceiling:
                    assert checkpointed.get(session, -1) >= offset, (partition, offset)
    assert applied  # the scenario did run batches
