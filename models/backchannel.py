"""Backchannel classification (METRICS.md §3) between IPU building and floor analysis.

An IPU ``y`` is a backchannel when ``dur(y) <= bc_max_ms`` and one other participant ``X`` (the
same ``X`` for both windows) has IPUs intersecting the closed window
``[y.start - bc_context_ms, y.start]`` and IPUs intersecting ``[y.end, y.end + bc_context_ms]``.
IPUs are half-open: ``[a, b)`` meets ``[lo, hi]`` when ``a <= hi and b > lo`` (v1.1), so an IPU
ending at ``y.start - bc_context_ms`` is no context and one starting at ``y.end +
bc_context_ms`` is. ``X``'s IPUs are those after pre-processing (§2), so clicks do not make
context; ``X`` may have any role, another client included.

The classifier decides as soon as the context is certain, then hands the IPU's onset and offset
to the floor sweep with its backchannel flag.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# push(time_ms, is_onset, participant_id, is_backchannel)
Push = Callable[[int, bool, str, bool], None]


class BackchannelClassifier:
    """Decides, per IPU, whether it is a backchannel; feeds onsets/offsets to the floor sweep."""

    __slots__ = ("_bc_max", "_context", "_onset_pushed", "_pending", "_push", "_recent")

    def __init__(self, bc_max_ms: int, bc_context_ms: int, push: Push) -> None:
        self._bc_max = bc_max_ms
        self._context = bc_context_ms
        self._push = push
        # Closed IPUs per participant, kept while they can still be context for a decision.
        self._recent: dict[str, list[tuple[int, int]]] = {}
        # Short closed IPUs waiting for their after-context to become certain.
        self._pending: list[tuple[int, int, str]] = []
        # Start of each participant's open IPU whose onset already went out (as non-backchannel).
        self._onset_pushed: dict[str, int] = {}

    def to_state(self) -> list[Any]:
        """Checkpoint form (models/state_codec.py); thresholds and ``push`` are the engine's."""
        return [[[pid, [x for ipu in ipus for x in ipu]] for pid, ipus in self._recent.items()],
                [list(entry) for entry in self._pending],
                [[pid, start] for pid, start in self._onset_pushed.items()]]

    @classmethod
    def from_state(cls, state: Any, bc_max_ms: int, bc_context_ms: int,
                   push: Push) -> BackchannelClassifier:
        classifier = cls(bc_max_ms, bc_context_ms, push)
        recent, pending, onset_pushed = state
        classifier._recent = {pid: list(zip(flat[::2], flat[1::2], strict=True))
                              for pid, flat in recent}
        classifier._pending = [(start, end, pid) for start, end, pid in pending]
        classifier._onset_pushed = dict(onset_pushed)
        return classifier

    def add_participant(self, participant_id: str) -> None:
        self._recent.setdefault(participant_id, [])

    def closed(self, participant_id: str, start_ms: int, end_ms: int) -> None:
        """An IPU of ``participant_id`` is final."""
        self._recent[participant_id].append((start_ms, end_ms))
        if self._onset_pushed.get(participant_id) == start_ms:
            del self._onset_pushed[participant_id]
            self._push(end_ms, False, participant_id, False)
        elif end_ms - start_ms > self._bc_max:
            self._push(start_ms, True, participant_id, False)
            self._push(end_ms, False, participant_id, False)
        else:
            self._pending.append((start_ms, end_ms, participant_id))

    def advance(self, known_ms: int, open_ipus: dict[str, tuple[int, int]]) -> None:
        """Decide what ``known_ms`` allows: every surviving IPU starting before it is known
        (closed, or open in ``open_ipus`` as ``(start, end_so_far)``)."""
        bc_max = self._bc_max
        for pid, (start, end_so_far) in open_ipus.items():
            # Longer than bc_max already: not a backchannel however it ends (§3), so its
            # onset can go to the floor sweep before the IPU closes.
            if end_so_far - start > bc_max and self._onset_pushed.get(pid) != start:
                self._onset_pushed[pid] = start
                self._push(start, True, pid, False)
        if self._pending:
            context = self._context
            still: list[tuple[int, int, str]] = []
            for start, end, pid in self._pending:
                if end + context < known_ms:
                    is_bc = self._has_context(pid, start, end, open_ipus)
                    self._push(start, True, pid, is_bc)
                    self._push(end, False, pid, is_bc)
                else:
                    still.append((start, end, pid))
            self._pending = still
        horizon = known_ms - 2 * self._context - bc_max
        for recent in self._recent.values():
            # Plain lists, not deques: a deque costs ~600 bytes even when nearly empty.
            drop = 0
            while drop < len(recent) and recent[drop][1] < horizon:
                drop += 1
            if drop:
                del recent[:drop]

    def finish(self, open_ipus: dict[str, tuple[int, int]]) -> None:
        """Session over: no further speech can arrive, decide everything."""
        self.advance(2**62, open_ipus)

    def _has_context(
        self, pid: str, start: int, end: int, open_ipus: dict[str, tuple[int, int]]
    ) -> bool:
        before_lo, before_hi = start - self._context, start
        after_lo, after_hi = end, end + self._context
        for other, recent in self._recent.items():
            if other == pid:
                continue
            before = after = False
            for s, e in recent:
                if s <= before_hi and e > before_lo:
                    before = True
                if s <= after_hi and e > after_lo:
                    after = True
            open_ipu = open_ipus.get(other)
            if open_ipu is not None:
                # An open IPU reaches past every window still being decided (see advance).
                before = before or open_ipu[0] <= before_hi
                after = after or open_ipu[0] <= after_hi
            if before and after:
                return True
        return False
