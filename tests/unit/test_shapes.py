"""The v1.1 input shapes that are not intervals (METRICS.md §1, §9): speaking-state changes
(``voice``), level samples (``levels``) and exclusive (dominant-speaker) sessions. Expected
numbers are worked out by hand from §1-§2 in the comments."""

from __future__ import annotations

from typing import Any

import pytest
from enginekit import levels, rejections, role, run, speech, start, state, voice

from models.errors import ValidationError
from models.events import Levels, parse_event, to_dbov

# --- parsing: every malformed event names its field -----------------------------------------


@pytest.mark.parametrize(("event", "field", "reason"), [
    (levels("c", [(100, 0.5)], scale="decibel"), "levels.scale", "must be one of"),
    ({**levels("c", [(100, 0.5)]), "samples": []}, "levels.samples", "non-empty"),
    ({**levels("c", [(100, 0.5)]), "samples": None}, "levels.samples", "non-empty"),
    (levels("c", [(100, 20), (100, 30)]), "levels.samples[1][0]", "increase in time"),
    (levels("c", [(200, 20), (100, 30)]), "levels.samples[1][0]", "increase in time"),
    (levels("c", [(100, 1.5)], scale="linear"), "levels.samples[0][1]", "outside the linear"),
    (levels("c", [(100, 10)], scale="dbfs"), "levels.samples[0][1]", "outside the dbfs"),
    (levels("c", [(100, 128)]), "levels.samples[0][1]", "outside the dbov"),
    (levels("c", [(100, 256)], scale="byte"), "levels.samples[0][1]", "outside the byte"),
    (levels("c", [(100, 40000)], scale="int16"), "levels.samples[0][1]", "outside the int16"),
    (levels("c", [(100, "loud")]), "levels.samples[0][1]", "finite number"),
    (levels("c", [(-1, 20)]), "levels.samples[0][0]", "ts_ms must be in"),
    (levels("c", [(1.5, 20)]), "levels.samples[0][0]", "must be an integer"),
    ({**levels("c", [(100, 20)]), "samples": [[100]]}, "levels.samples[0]", "pair"),
    (levels("c", [(0, 20), (60_001, 20)]), "levels.samples", "more than 60000"),
    ({**voice("c", 100, True), "speaking": "yes"}, "voice.speaking", "true or false"),
    ({**voice("c", 100, True), "speaking": None}, "voice.speaking", "true or false"),
    ({**start(), "exclusive": 1}, "session.start.exclusive", "true or false"),
])
def test_malformed_shapes_are_rejected_naming_the_field(event: dict[str, Any], field: str,
                                                        reason: str) -> None:
    with pytest.raises(ValidationError) as raised:
        parse_event(event)
    assert raised.value.field == field
    assert reason in raised.value.reason


@pytest.mark.parametrize(("scale", "value", "dbov"), [
    ("dbov", 40, 40), ("dbov", 40.4, 40), ("dbov", 40.5, 41),
    ("dbfs", -30, 30), ("dbvo", -127, 127), ("dbfs", 0, 0),
    ("linear", 1.0, 0), ("linear", 0.1, 20), ("linear", 0.0, 127), ("linear", 1e-9, 127),
    ("byte", 255, 0), ("byte", 0, 127), ("byte", 26, 20),  # 26/255: -19.83 dB
    ("int16", 32767, 0), ("int16", 3277, 20), ("int16", 1, 90),  # 1/32767: -90.3 dB
])
def test_each_scale_converts_to_rounded_clamped_dbov(scale: str, value: float, dbov: int) -> None:
    assert to_dbov(scale, value) == dbov


def test_a_levels_event_keeps_its_samples_compactly() -> None:
    event = parse_event(levels("c", [(100, 0.1), (150, 0.0)], scale="linear"))
    assert isinstance(event, Levels)
    assert (event.first_ms, event.last_ms) == (100, 150)
    assert list(event.sample_times()) == [100, 150]
    assert list(event.dbov) == [20, 127]


# --- voice: speaking-state changes ----------------------------------------------------------


def test_voice_events_open_and_close_segments_and_repeats_change_nothing() -> None:
    # Client speaks 1000-4000 (a repeated true at 2000 changes nothing) and 10000-12500 (a
    # repeated false at 13000 changes nothing): 3.0 + 2.5 = 5.5 s.
    report, outputs = run(voice("c", 1000, True), voice("c", 2000, True),
                          voice("c", 4000, False), voice("c", 10_000, True),
                          voice("c", 12_500, False), voice("c", 13_000, False))
    assert not rejections(outputs)
    assert role(report, "client")["talk_s"] == 5.5
    assert role(report, "client")["pauses"]["count"] == 1  # 4000-10000, within the turn
    assert report["quality"]["participants"]["c"]["source"] == "voice"


@pytest.mark.parametrize("change", ["mute", "leave"])
def test_mute_or_leave_ends_an_open_speaking_state(change: str) -> None:
    # Speaking from 1000, muted (or gone) at 3000: 2.0 s; no false ever comes.
    report, _ = run(voice("c", 1000, True), state(change, "c", 3000))
    assert role(report, "client")["talk_s"] == 2.0


def test_session_end_ends_an_open_speaking_state() -> None:
    report, _ = run(voice("t", 50_000, True), end_ms=60_000)
    assert role(report, "therapist")["talk_s"] == 10.0


def test_a_participant_sends_one_state_source() -> None:
    report, outputs = run(voice("c", 1000, True), levels("c", [(2000, 20)]),
                          voice("c", 3000, False))
    (rejected,) = rejections(outputs)
    assert rejected.error.field == "levels.type"
    assert role(report, "client")["talk_s"] == 2.0


# --- levels: samples that cover time -----------------------------------------------------------


def test_a_sample_covers_until_the_next_one_or_level_hold_ms() -> None:
    # Voiced samples at 1000, 1200 (next at 1200 and 1400): 1000-1400; the voiced one at 1400
    # has no follower: it holds 500 ms, to 1900. Then silence (127) at 5000; voiced at 8000,
    # 8100, 8200 then silent at 8250: 8000-8250 = 0.25 s. Total 0.9 + 0.25 = 1.15 s, two
    # IPUs separated by a 6.1 s pause.
    report, outputs = run(
        levels("c", [(1000, 20), (1200, 30), (1400, 50)]),
        levels("c", [(5000, 127), (8000, 10), (8100, 10), (8200, 10), (8250, 127)]),
    )
    assert not rejections(outputs)
    assert role(report, "client")["talk_s"] == 1.15
    assert role(report, "client")["pauses"] == {"count": 1, "median_ms": 6100.0}
    # Coverage (§6): samples cover 1000-1900, 5000-5500, 8000-8750 = 2.15 s of 60 s.
    assert report["quality"]["participants"]["c"]["coverage"] == round(2150 / 60_000, 4)
    assert report["quality"]["participants"]["c"]["source"] == "levels"


def test_the_next_batch_cuts_the_previous_samples_hold() -> None:
    # Voiced at 1000 would hold to 1500, but the next batch's silent sample comes at 1300.
    report, _ = run(levels("c", [(1000, 20)]), levels("c", [(1300, 127)]))
    assert role(report, "client")["talk_s"] == 0.3


def test_level_voiced_dbov_and_level_hold_ms_are_configuration() -> None:
    samples = [(1000, 55), (1500, 55)]
    report, _ = run(levels("c", samples))
    assert role(report, "client")["talk_s"] == 0.0  # 55 -dBov is above the default 50
    report, _ = run(levels("c", samples), level_voiced_dbov=60, level_hold_ms=200)
    assert role(report, "client")["talk_s"] == 0.4  # 1000-1200 and 1500-1700 (bridged: 0.4)


def test_overlapping_level_batches_of_one_participant_are_rejected() -> None:
    report, outputs = run(levels("c", [(1000, 20), (2000, 20)]),
                          levels("c", [(1500, 20), (1600, 127)]))
    (rejected,) = rejections(outputs)
    assert rejected.error.field == "levels.samples[0][0]"
    assert "overlap" in rejected.error.reason
    # 1000 holds to 1500 (its follower is at 2000), 2000 holds to 2500: 1.0 s.
    assert role(report, "client")["talk_s"] == 1.0


# --- exclusive sessions (dominant-speaker sources) --------------------------------------------


def exclusive_start() -> dict[str, Any]:
    return {**start(), "exclusive": True}


def test_an_exclusive_onset_ends_the_other_speaker_and_overlap_fields_are_null() -> None:
    # The therapist speaks from 1000; the client becomes dominant at 4000 (no false for the
    # therapist ever comes) and stops at 9000. Therapist 3.0 s, client 5.0 s, no overlap.
    events = [exclusive_start(), voice("t", 1000, True), voice("c", 4000, True),
              voice("c", 9000, False),
              {"type": "session.end", "session_id": "s1", "ts_ms": 60_000}]
    from enginekit import run_session
    report, outputs = run_session(events)
    assert not rejections(outputs)
    assert role(report, "therapist")["talk_s"] == 3.0
    assert role(report, "client")["talk_s"] == 5.0
    assert report["quality"]["overlap_visible"] is False
    for name in ("therapist", "client"):
        for field in ("backchannels", "backchannels_per_min", "interruptions_made",
                      "interrupted"):
            assert role(report, name)[field] is None
    for field in ("overlap_s", "collisions", "interruption_asymmetry", "interruptions"):
        assert report["session"][field] is None
    # What does not need simultaneous speech is still reported.
    assert report["session"]["speaker_changes"] == 1
    assert role(report, "client")["gaps"]["count"] == 1


def test_a_non_exclusive_session_sees_overlaps() -> None:
    report, _ = run(voice("t", 1000, True), voice("c", 4000, True), voice("c", 9000, False),
                    voice("t", 10_000, False), speech("c", 20_000, 21_000))
    assert report["quality"]["overlap_visible"] is True
    assert report["session"]["overlap_s"] == 5.0  # 4000-9000
    assert role(report, "therapist")["talk_s"] == 9.0
