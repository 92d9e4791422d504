"""A participant's held ``voice`` or ``levels`` events as one compact run (METRICS.md §1, §9).

The session engine holds every state event until the state horizon, ``allowed_lateness_ms``
+ 60 s behind the newest input (models/session_hold.py), to apply it in canonical order. As
Python objects a held event costs about 200 bytes (``voice``) to 400 bytes (a ``levels`` batch
of ten samples): a levels source held 65 s of them, most of a session's memory. Sources send
a participant's events in time order, so a run keeps those that arrive after the previous
one in canonical order as columns instead:

- ``voice``: 8 bytes of time and 1 byte of state per event;
- ``levels``: per batch its first sample's time (4 bytes after the run's first), sample count
  (1, or 2 once one exceeds 255) and the spacing of its samples when even (likewise; as
  platforms poll at a fixed period); per sample its -dBov (1), and, in a batch whose samples
  are not evenly spaced, its offset from the batch's first sample (2 bytes: a batch spans at
  most 60 s).

A copy of a held event is recognised in its run (:meth:`HeldRun.holds`, exact), so the engine
remembers no key for it until it is applied (models/session.py).

A run takes part in the engine's canonical order as one heap entry, the entry its first event
would have (:meth:`HeldRun.head_entry`, the same key), so the heaps still merge every held
event by key: applying the head (:meth:`HeldRun.pop`) gives back the event exactly as it was
parsed, and the run re-enters the heap it came from under its next event's key. An event that
does not follow the run's last one (out of order, a tie, another scale) is held on its own as
before, so order, duplicates and rejections are what they were. Tags (what the caller passed
to ``ingest``: a line number, a Kafka record) are kept per event only when one is given.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

from models.event_order import canonical_key
from models.events import LEVEL_SCALES, MAX_BATCH_MS, Event, Levels, LevelScale, Voice
from models.state_codec import StateError, tag_from_state, tag_to_state

# Applied events are dropped from the columns once there are 8 of them and they are a
# sixteenth of the run: the columns then hold at most a fifteenth more than what still waits
# (dropped at a quarter, they held a third more: 0.7 KiB of a levels session at 10 minutes),
# and each event is moved about 15 times (a memmove of its bytes; arrays shrink when a prefix
# is deleted).
_COMPACT_AFTER = 8
_COMPACT_SHARE = 16
_OFFSET_LIMIT = 0xFFFF  # offsets within a batch are 2-byte unsigned
_FIRST_LIMIT = 0xFFFF_FFFF  # batch starts after a run's base are 4-byte unsigned

assert MAX_BATCH_MS <= _OFFSET_LIMIT, "a batch's sample offsets must fit the 'H' column"


class HeldRun:
    """Events of one participant and kind, in canonical order, not yet applied."""

    __slots__ = ("_head", "_tags", "participant_id", "session_id")

    def __init__(self, session_id: str, participant_id: str) -> None:
        self.session_id = session_id
        self.participant_id = participant_id
        self._head = 0  # index of the next event to apply
        self._tags: list[Any] | None = None  # per event, once one is not None

    def __len__(self) -> int:
        raise NotImplementedError

    def head(self) -> Event:
        """The next event to apply (the run is not empty)."""
        raise NotImplementedError

    def append(self, event: Event, tag: Any) -> bool:
        """Keep ``event`` at the run's end if it follows the last one in canonical order and
        fits the columns; ``False`` (nothing changed) otherwise."""
        raise NotImplementedError

    def holds(self, event: Event) -> bool:
        """Whether ``event`` (valid, of this run's participant) waits in the run: a copy of
        it is then a duplicate (§9), found here instead of in the engine's remembered keys,
        which would hold every held event a second time (memory)."""
        raise NotImplementedError

    def recent(self, oldest: int) -> Iterator[Event]:
        """The events waiting in the run known at ``oldest`` or later, in order (a checkpoint
        lists their dedupe keys; only these are built)."""
        raise NotImplementedError

    def _advance(self) -> None:
        raise NotImplementedError

    def head_entry(self) -> tuple[Any, ...]:
        """The heap entry standing for the run: the head event's key, its tag, the run. The
        head itself is built again when popped, not kept meanwhile (memory)."""
        return (*canonical_key(self.head()), self._tag(self._head), self)

    def pop(self) -> tuple[Any, Event]:
        """The next event and its tag, removed from the run."""
        event = self.head()
        tag = self._tag(self._head)
        self._advance()
        return tag, event

    def items(self) -> Iterator[tuple[Any, Event]]:
        """Every event not yet applied, with its tag, in order (checkpoints)."""
        copy = self._copy()
        while len(copy):
            yield copy.pop()

    def _copy(self) -> HeldRun:
        raise NotImplementedError

    def to_state(self) -> list[Any]:
        """Checkpoint form (models/checkpoint.py, format 5): the columns from the head on."""
        raise NotImplementedError

    def _tags_state(self) -> list[Any] | None:
        tags = self._tags
        return None if tags is None else [tag_to_state(tag) for tag in tags[self._head:]]

    def _tags_from_state(self, state: list[Any] | None, count: int) -> None:
        if state is not None:
            if len(state) != count:
                raise StateError(f"a held run has {count} events and {len(state)} tags")
            self._tags = [tag_from_state(tag) for tag in state]

    def _tag(self, index: int) -> Any:
        return None if self._tags is None else self._tags[index]

    def _keep_tag(self, tag: Any, count: int) -> None:
        """Record the tag of the event just appended as number ``count`` (from 0)."""
        if self._tags is not None:
            self._tags.append(tag)
        elif tag is not None:
            self._tags = [None] * count + [tag]


class VoiceRun(HeldRun):
    """A participant's held speaking-state changes: ``ts_ms`` and ``speaking`` columns."""

    __slots__ = ("_speaking", "_times")

    def __init__(self, session_id: str, participant_id: str) -> None:
        super().__init__(session_id, participant_id)
        self._times = array("q")
        self._speaking = array("B")

    def __len__(self) -> int:
        return len(self._times) - self._head

    def head(self) -> Voice:
        i = self._head
        return Voice(self.session_id, self.participant_id, self._times[i],
                     bool(self._speaking[i]))

    def append(self, event: Event, tag: Any) -> bool:
        if not isinstance(event, Voice) or event.participant_id != self.participant_id:
            return False
        times = self._times
        if len(times) > self._head:  # keys (ts_ms, rank, pid, speaking): strictly after
            last = (times[-1], bool(self._speaking[-1]))
            if (event.ts_ms, event.speaking) <= last:
                return False
        times.append(event.ts_ms)
        self._speaking.append(event.speaking)
        self._keep_tag(tag, len(times) - 1)
        return True

    def holds(self, event: Event) -> bool:
        if not isinstance(event, Voice):
            return False
        times, ts = self._times, event.ts_ms
        i = bisect_left(times, ts, self._head)
        while i < len(times) and times[i] == ts:  # at most two: off, then on
            if self._speaking[i] == event.speaking:
                return True
            i += 1
        return False

    def recent(self, oldest: int) -> Iterator[Event]:
        times = self._times
        for i in range(bisect_left(times, oldest, self._head), len(times)):
            yield Voice(self.session_id, self.participant_id, times[i],
                        bool(self._speaking[i]))

    def _advance(self) -> None:
        self._head += 1
        head = self._head
        if head >= _COMPACT_AFTER and _COMPACT_SHARE * head >= len(self._times):
            del self._times[:head], self._speaking[:head]
            if self._tags is not None:
                del self._tags[:head]
            self._head = 0

    def to_state(self) -> list[Any]:
        """``["voice", times, speaking, tags]``: int64 and byte columns, tags or ``None``."""
        head = self._head
        return ["voice", self._times[head:].tobytes(), self._speaking[head:].tobytes(),
                self._tags_state()]

    def _copy(self) -> VoiceRun:
        run = VoiceRun(self.session_id, self.participant_id)
        run._times, run._speaking = array("q", self._times), array("B", self._speaking)
        run._tags = None if self._tags is None else list(self._tags)
        run._head = self._head
        return run


class LevelRun(HeldRun):
    """A participant's held level batches of one scale, as columns (see the module
    docstring)."""

    __slots__ = ("_base", "_counts", "_dbov", "_firsts", "_offset", "_offsets", "_sample",
                 "_steps", "scale")

    def __init__(self, session_id: str, participant_id: str, scale: LevelScale) -> None:
        super().__init__(session_id, participant_id)
        self.scale = scale
        # Per batch: its first sample's time after _base, the first batch's since the run
        # was last empty (4 bytes instead of 8: a run holds about a minute of batches).
        self._base = 0
        self._firsts = array("I")
        # Per batch: its number of samples (<= 6,000), and the ms between its samples when
        # they are evenly spaced (a platform polls at a fixed period), else 0 and its offsets
        # are in _offsets. One byte each, widened to two by the first value above 255.
        # Evenly spaced batches thus cost 1 byte a sample (the level), not 3.
        self._counts = array("B")
        self._steps = array("B")
        self._offsets = array("H")  # per sample after an uneven batch's first: ms after it
        self._dbov = array("B")  # per sample: its level in -dBov
        self._sample = 0  # index in _dbov of the head batch's first sample
        self._offset = 0  # index in _offsets of the head batch's offsets (when uneven)

    def __len__(self) -> int:
        return len(self._firsts) - self._head

    def _batch_times(self, index: int, offset: int) -> array[int]:
        """Batch ``index``'s sample times, its uneven offsets (if any) at ``offset``."""
        first = self._base + self._firsts[index]
        count, step = self._counts[index], self._steps[index]
        if step:
            return array("q", range(first, first + step * count, step))
        times = array("q", [first])
        times.extend(first + offset for offset in self._offsets[offset: offset + count - 1])
        return times

    def head(self) -> Levels:
        i, s = self._head, self._sample
        times = self._batch_times(i, self._offset)
        return Levels(self.session_id, self.participant_id, self.scale, times.tobytes(),
                      self._dbov[s: s + self._counts[i]].tobytes())

    def append(self, event: Event, tag: Any) -> bool:
        if (not isinstance(event, Levels) or event.participant_id != self.participant_id
                or event.scale != self.scale):
            return False
        first = event.first_ms
        if len(self._firsts) > self._head:
            # Keys (first_ms, rank, pid, times, dbov): strictly after when the first sample
            # is later; a tie on it (an overlapping batch, to be rejected) is held on its own.
            if first - self._base <= self._firsts[-1]:
                return False
        else:
            self._restart(first)
        if first - self._base > _FIRST_LIMIT:  # a run over 49 days long: held on its own
            return False
        times = event.sample_times()
        if times[-1] - first > _OFFSET_LIMIT:  # cannot happen for a validated batch
            return False
        self._append_columns(times, event.dbov)
        self._keep_tag(tag, len(self._firsts) - 1)
        return True

    def _restart(self, base: int) -> None:
        """Empty the columns of an empty run (every batch applied); times count from
        ``base`` again."""
        self._base = base
        del self._firsts[:], self._counts[:], self._steps[:], self._offsets[:], self._dbov[:]
        self._tags = None
        self._head = self._sample = self._offset = 0

    def holds(self, event: Event) -> bool:
        if not isinstance(event, Levels) or event.scale != self.scale:
            return False
        at = event.first_ms - self._base
        firsts, head = self._firsts, self._head
        if at < 0 or at > _FIRST_LIMIT:
            return False
        index = bisect_left(firsts, at, head)
        if index == len(firsts) or firsts[index] != at:
            return False
        sample, offset = self._sample, self._offset
        for before in range(head, index):
            count = self._counts[before]
            sample += count
            if not self._steps[before]:
                offset += count - 1
        count = self._counts[index]
        return (len(event.dbov) == count
                and self._dbov[sample: sample + count].tobytes() == event.dbov
                and self._batch_times(index, offset).tobytes() == event.times)

    def recent(self, oldest: int) -> Iterator[Event]:
        sample, offset = self._sample, self._offset
        for index in range(self._head, len(self._firsts)):
            count, step = self._counts[index], self._steps[index]
            first = self._base + self._firsts[index]
            if step:
                last = first + step * (count - 1)
            else:
                last = first + self._offsets[offset + count - 2] if count > 1 else first
            if last >= oldest:
                yield Levels(self.session_id, self.participant_id, self.scale,
                             self._batch_times(index, offset).tobytes(),
                             self._dbov[sample: sample + count].tobytes())
            sample += count
            if not step:
                offset += count - 1

    def _append_columns(self, times: array[int], dbov: bytes) -> None:
        first, count = times[0], len(times)
        step = times[1] - first if count > 1 else 0
        # Evenly spaced: every gap equals the first (the first and last samples are a quick
        # test before the whole one).
        if step > 0 and times[-1] - first == step * (count - 1) and all(
                b - a == step for a, b in pairwise(times)):
            self._steps = _appended(self._steps, step)
        else:
            self._steps = _appended(self._steps, 0)
            self._offsets.extend(ts - first for ts in times[1:])
        self._firsts.append(first - self._base)
        self._counts = _appended(self._counts, count)
        self._dbov.frombytes(dbov)

    def _advance(self) -> None:
        head = self._head
        count = self._counts[head]
        if not self._steps[head]:
            self._offset += count - 1
        self._head = head = head + 1
        self._sample += count
        if head >= _COMPACT_AFTER and _COMPACT_SHARE * head >= len(self._firsts):
            del self._firsts[:head], self._counts[:head], self._steps[:head]
            del self._offsets[:self._offset], self._dbov[:self._sample]
            if self._tags is not None:
                del self._tags[:head]
            self._head = self._sample = self._offset = 0

    def to_state(self) -> list[Any]:
        """``["levels", scale, firsts, counts, offsets, dbov, tags]``: the columns as native
        bytes (int64, uint16, uint16, uint8), every batch's offsets written out (format 5:
        the even spacing and the narrower columns are found again on load), tags or
        ``None``."""
        head, offset, base = self._head, self._offset, self._base
        offsets = array("H")
        for index in range(head, len(self._firsts)):
            times = self._batch_times(index, offset)
            first = times[0]
            offsets.extend(ts - first for ts in times[1:])
            if not self._steps[index]:
                offset += len(times) - 1
        firsts = array("q", (base + first for first in self._firsts[head:]))
        return ["levels", self.scale, firsts.tobytes(),
                array("H", self._counts[head:]).tobytes(), offsets.tobytes(),
                self._dbov[self._sample:].tobytes(), self._tags_state()]

    def _copy(self) -> LevelRun:
        run = LevelRun(self.session_id, self.participant_id, self.scale)
        run._base, run._firsts, run._counts = self._base, self._firsts[:], self._counts[:]
        run._steps, run._offsets, run._dbov = self._steps[:], self._offsets[:], self._dbov[:]
        run._tags = None if self._tags is None else list(self._tags)
        run._head, run._sample, run._offset = self._head, self._sample, self._offset
        return run


def _appended(column: array[int], value: int) -> array[int]:
    """``column`` with ``value`` appended: the column itself, or a copy widened to 2 bytes
    when ``value`` does not fit its 1 (every value here fits 2)."""
    try:
        column.append(value)
    except OverflowError:
        column = array("H", column)
        column.append(value)
    return column


def new_run(event: Voice | Levels, tag: Any) -> HeldRun:
    """A run holding ``event`` alone."""
    run: HeldRun = (VoiceRun(event.session_id, event.participant_id) if isinstance(event, Voice)
                    else LevelRun(event.session_id, event.participant_id, event.scale))
    appended = run.append(event, tag)
    assert appended, "an empty run takes any event of its kind"
    return run


def run_from_state(session_id: str, participant_id: str, state: Any) -> HeldRun:
    """The run :meth:`HeldRun.to_state` described (``StateError`` on columns that do not
    fit together)."""
    kind, *values = state
    run: HeldRun
    if kind == "voice":
        times, speaking, tags = values
        voice = run = VoiceRun(session_id, participant_id)
        voice._times.frombytes(times)
        voice._speaking.frombytes(speaking)
        count = len(voice._times)
        if len(voice._speaking) != count:
            raise StateError("a held voice run's columns differ in length")
    elif kind == "levels":
        scale, firsts, counts, offsets, dbov, tags = values
        if scale not in LEVEL_SCALES:
            raise StateError(f"a held levels run has an unknown scale {scale!r}")
        levels = run = LevelRun(session_id, participant_id, scale)
        columns = array("q"), array("H"), array("H"), array("B")
        for column, data in zip(columns, (firsts, counts, offsets, dbov), strict=True):
            column.frombytes(data)
        first_column, count_column, offset_column, dbov_column = columns
        count = len(first_column)
        samples = len(dbov_column)
        if (len(count_column) != count or sum(count_column) != samples
                or len(offset_column) != samples - count or 0 in count_column):
            raise StateError("a held levels run's columns do not fit together")
        at = 0
        levels._base = first_column[0] if count else 0
        if count and not 0 <= first_column[-1] - levels._base <= _FIRST_LIMIT:
            raise StateError("a held levels run spans more than its columns can hold")
        for first, size in zip(first_column, count_column, strict=True):
            times = array("q", [first])
            times.extend(first + offset for offset in offset_column[at: at + size - 1])
            levels._append_columns(times, b"")
            at += size - 1
        levels._dbov = dbov_column
    else:
        raise StateError(f"unknown held run kind {kind!r}")
    if not count:
        raise StateError("an empty held run")
    run._tags_from_state(tags, count)
    return run
