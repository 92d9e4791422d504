"""How the silero backend turns per-window values into 0/1 frames (issue 17; models/vad_silero.py).

The default backend decides each 20 ms frame from two **branches** and calls it speech when
either does:

- the **model** branch: the Silero model's own speech probability with the model-alone rule
  (speech from 0.55 until under 0.3, two windows of lookahead), each of its units then
  **trimmed**: its first frame and its last five dropped. On hand-labelled near-field speech
  the model's probability rises about one window early (the lookahead) and falls about 100 ms
  late (its recurrent state remembers the phrase): over TEN VAD's 30 test clips, 71 % of the
  model-alone rule's false speech frames lay within 100 ms of a labelled edge. Trimming takes
  that back.
- the **head** branch: models/vad_head.py's value (the model's state and the band evidence,
  which hear quiet and distant speech the model's own layer drops), with a hysteresis strict
  enough that it adds speech only where it is confident: the head alone bridged the pauses of
  near-field speech (docs/vad.md).

Audio sampled at 8 kHz or less replaces the head's branch with the **narrowband head**'s
(models/vad_narrowband_head.py: the same kind of head, read off the model file's 8 kHz
network) and adds a third, the **narrowband** branch: that network's probability, with its
own rule (models/vad_silero.py, "Narrowband audio").

A branch is a :class:`Branch`; :class:`FrameDecider` keeps one stream's state (each branch's
hysteresis, the current unit's length, the frames held back for the trim). A frame is decided
once the window holding its last sample and every branch's lookahead windows are known; it is
**published** ``max(trim_end)`` frames later (100 ms), so that a unit's end can still be
trimmed. Decisions depend only on the values, never on how they arrived in calls. At the end
of a stream (:meth:`FrameDecider.flush`) the last frames are decided with the lookahead
windows there are, and a unit still open ends there, trimmed like any other: without that,
every recording lost its last 180-200 ms (frame F1 0.001-0.005 on the tuning sets).

Pure code: no I/O, no clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from models.errors import ConfigError

Source = Literal["model", "head", "narrowband", "narrowband_head"]


@dataclass(frozen=True)
class Branch:
    """One way of calling frames speech: from ``source``'s values (``"model"``: the model's
    probability, ``"head"``: models/vad_head.py's value, ``"narrowband"``: the 8 kHz
    network's probability, ``"narrowband_head"``: models/vad_narrowband_head.py's value), the
    highest of a frame's window and
    ``lookahead`` windows after it, speech from ``threshold`` until under ``release``; then
    each unit loses its first ``trim_start`` and last ``trim_end`` frames (a unit no longer
    than both is dropped)."""

    source: Source
    threshold: float
    release: float
    lookahead: int
    trim_start: int = 0
    trim_end: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ConfigError("vad.threshold", "must be in (0, 1)")
        if not 0 < self.release <= self.threshold:
            raise ConfigError("vad.release", "must be in (0, threshold]")
        if not 0 <= self.lookahead <= 16:
            raise ConfigError("vad.lookahead", "must be 0..16 windows")
        if not (0 <= self.trim_start <= 50 and 0 <= self.trim_end <= 50):
            raise ConfigError("vad.trim", "must be 0..50 frames")


class FrameDecider:
    """One stream's decisions over ``branches`` (module docstring)."""

    def __init__(self, branches: Sequence[Branch]) -> None:
        if not branches:
            raise ConfigError("vad.branches", "at least one branch is needed")
        self.branches = tuple(branches)
        self.lookahead = max(b.lookahead for b in self.branches)
        self.delay = max(b.trim_end for b in self.branches)
        self._speaking = [False] * len(self.branches)
        self._run = [0] * len(self.branches)  # frames of each branch's current unit so far
        # Frames decided but not yet published: one flag per branch each.
        self._held: deque[list[bool]] = deque()

    @property
    def held(self) -> int:
        """Frames decided but held back for the trim (at most :attr:`delay`)."""
        return len(self._held)

    def decide(self, values: Mapping[Source, Sequence[float]], ats: Sequence[int]) -> str:
        """Decide the frames whose last samples lie in windows ``ats`` (ascending) of
        ``values`` (each source's per-window values, with at least ``lookahead`` windows after
        the last of ``ats``); return the frames now published, one ``0``/``1`` each."""
        if not ats:
            return ""
        # The rule runs per 20 ms frame of every stream, on the ingest's hot path: each branch
        # runs over all the frames in one tight loop, then the branches' flags meet.
        held = self._held
        before = len(held)  # frames held from earlier calls, the last ``delay`` at most
        columns = []
        for k, branch in enumerate(self.branches):
            flags = [False] * len(ats)
            speaking, run = self._speaking[k], self._run[k]
            threshold, release = branch.threshold, branch.release
            trim_start, trim_end = branch.trim_start, branch.trim_end
            for i, value in enumerate(_frame_values(values[branch.source], ats,
                                                    branch.lookahead)):
                if value >= (release if speaking else threshold):
                    speaking = True
                    run += 1
                    flags[i] = run > trim_start
                elif run:
                    # The unit ended: its last frames, held here or from an earlier call
                    # (``delay`` is at least ``trim_end``), are trimmed.
                    for at in range(i - min(trim_end, run), i):
                        if at >= 0:
                            flags[at] = False
                        else:
                            held[before + at][k] = False
                    speaking, run = False, 0
                else:
                    speaking = False
            self._speaking[k], self._run[k] = speaking, run
            columns.append(flags)
        held.extend(list(row) for row in zip(*columns, strict=True))
        return "".join("1" if any(held.popleft()) else "0"
                       for _ in range(len(held) - self.delay))

    def flush(self) -> str:
        """The end of the stream: a unit still open ends there, trimmed as any unit is (its
        last ``trim_end`` frames, all still held), and the held frames are published.
        (Publishing them untrimmed scored the same within 0.001 on the tuning recordings,
        AMI train and TEN VAD's choice half; trimmed is the rule every other unit follows.)"""
        held = self._held
        for k, branch in enumerate(self.branches):
            if self._speaking[k]:
                for back in range(1, min(branch.trim_end, self._run[k], len(held)) + 1):
                    held[-back][k] = False
                self._speaking[k], self._run[k] = False, 0
        out = "".join("1" if any(flags) else "0" for flags in held)
        held.clear()
        return out


def _frame_values(series: Sequence[float], ats: Sequence[int], lookahead: int) -> list[float]:
    """Per frame, the highest of ``series`` over its window ``at`` and ``lookahead`` windows
    after it (fewer at the end of a stream). Consecutive frames share windows (a window is
    32 ms, a frame 20 ms): each window's highest is found once."""
    first, last = ats[0], ats[-1]
    if lookahead == 0:
        return [series[at] for at in ats]
    if last + lookahead >= len(series):  # the stream's end: the windows there are
        return [max(series[at:at + lookahead + 1]) for at in ats]
    span = series[first:last + lookahead + 1]
    count = last - first + 1
    highest = list(map(max, *(span[j:j + count] for j in range(lookahead + 1))))
    return [highest[at - first] for at in ats]
