"""The default VAD's decision rule (models/vad_decision.py; issue 17): each branch's hysteresis
over its own values, its units trimmed, the branches OR'd, frames published once their unit's
end can no longer trim them, the same however the windows arrive."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import ConfigError
from models.vad_decision import Branch, FrameDecider

# 20 ms frames over 32 ms windows: frame f's last sample lies in window (f + 1) * 320 // 512.
FRAME, WINDOW = 320, 512


def ats(frames: int) -> list[int]:
    return [((f + 1) * FRAME - 1) // WINDOW for f in range(frames)]


def test_a_unit_loses_its_first_and_last_frames_and_is_published_late() -> None:
    """A unit of the model branch, 0.55 / 0.3 without lookahead, trimmed 1 / 4: its first
    frame and last four are not speech, and the last four frames decided are held back."""
    p = [0.0] * 10 + [0.9] * 30 + [0.0] * 20
    values = {"model": p, "head": [0.0] * len(p)}
    # One value per frame here (frame f reads index f), as in the tests below.
    decider = FrameDecider([Branch("model", 0.55, 0.3, 0, trim_start=1, trim_end=4)])
    out = decider.decide(values, list(range(len(p))))  # type: ignore[arg-type]
    assert decider.delay == 4 and decider.held == 4
    assert len(out) == len(p) - 4
    expected = [0] * 11 + [1] * 25 + [0] * 20
    assert out == "".join(map(str, expected))[: len(p) - 4]


def test_a_unit_no_longer_than_its_trims_is_dropped() -> None:
    values = {"model": [0.0, 0.9, 0.9, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "head": [0.0] * 10}
    decider = FrameDecider([Branch("model", 0.5, 0.3, 0, trim_start=1, trim_end=2)])
    assert decider.decide(values, list(range(10))) == "0" * 8  # type: ignore[arg-type]
    decider = FrameDecider([Branch("model", 0.5, 0.3, 0, trim_start=1, trim_end=1)])
    assert decider.decide(values, list(range(10))) == "001000000"  # type: ignore[arg-type]


def test_either_branch_calls_speech_and_hysteresis_holds_between_thresholds() -> None:
    """The head branch adds what the model branch misses; each branch holds speech while its
    value stays at or over its release."""
    model = [0.0] * 5 + [0.9] * 5 + [0.0] * 20
    head = [0.0] * 15 + [0.9, 0.7, 0.7, 0.7, 0.6] + [0.0] * 10
    decider = FrameDecider([Branch("model", 0.55, 0.3, 0),
                            Branch("head", 0.85, 0.65, 0)])
    out = decider.decide({"model": model, "head": head}, list(range(30)))
    assert out == "0" * 5 + "1" * 5 + "0" * 5 + "1" * 4 + "0" * 11


def test_lookahead_takes_the_highest_of_the_windows_after() -> None:
    values = {"model": [0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0], "head": [0.0] * 8}
    decider = FrameDecider([Branch("model", 0.5, 0.3, 2)])
    assert decider.lookahead == 2
    assert decider.decide(values, list(range(6))) == "011100"  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_decisions_do_not_depend_on_how_frames_arrive(seed: int) -> None:
    """The same values decided in one call or in calls of random sizes: the same frames."""
    rng = np.random.default_rng(seed)
    frames = 600
    model = np.clip(np.repeat(rng.random(frames // 8 + 4), 8) + rng.normal(0, 0.1,
                                                                            (frames // 8 + 4) * 8),
                    0, 1)
    head = np.clip(np.roll(model, 13) + rng.normal(0, 0.2, len(model)), 0, 1)
    values = {"model": model.tolist(), "head": head.tolist()}
    branches = [Branch("model", 0.55, 0.3, 2, 1, 4), Branch("head", 0.85, 0.65, 1)]
    whole = FrameDecider(branches).decide(values, ats(frames))  # type: ignore[arg-type]
    decider, parts, at = FrameDecider(branches), [], 0
    positions = ats(frames)
    while at < frames:
        size = int(rng.integers(0, 40))
        parts.append(decider.decide(values, positions[at:at + size]))  # type: ignore[arg-type]
        at += size
    assert "".join(parts) == whole
    assert len(whole) == frames - 4 and "1" in whole and "0" in whole


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"threshold": 1.0}, "vad.threshold"), ({"release": 0.9}, "vad.release"),
    ({"lookahead": 17}, "vad.lookahead"), ({"trim_end": -1}, "vad.trim")])
def test_bad_branch_settings_name_the_field(kwargs: dict[str, float], field: str) -> None:
    settings = {"source": "model", "threshold": 0.55, "release": 0.3, "lookahead": 2, **kwargs}
    with pytest.raises(ConfigError) as raised:
        Branch(**settings)  # type: ignore[arg-type]
    assert raised.value.field == field
    with pytest.raises(ConfigError) as raised:
        FrameDecider([])
    assert raised.value.field == "vad.branches"


def test_the_end_of_a_stream_publishes_what_is_held_and_ends_an_open_unit() -> None:
    """At the end (``flush``), the frames held for the trim are published; a unit still open
    ends there and loses its last frames as any unit does; a closed one keeps its decisions.
    Nothing stays held, and the stream's frames are all published exactly once."""
    branch = Branch("model", 0.55, 0.3, 0, trim_start=1, trim_end=4)
    p = [0.0] * 10 + [0.9] * 30  # speech up to the end
    decider = FrameDecider([branch])
    out = decider.decide({"model": p}, list(range(len(p))))
    tail = decider.flush()
    assert decider.held == 0 and len(out + tail) == len(p)
    assert out + tail == "0" * 11 + "1" * 25 + "0" * 4
    assert decider.flush() == ""
    # A unit that ended before the end keeps what it was given; silence stays silence.
    p = [0.0] * 10 + [0.9] * 20 + [0.0] * 2
    decider = FrameDecider([branch])
    out = decider.decide({"model": p}, list(range(len(p))))
    assert out + decider.flush() == "0" * 11 + "1" * 15 + "0" * 6
