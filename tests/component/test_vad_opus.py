"""A participant of a call: real speech through Opus into the WebRTC ingest's audio mode keeps
the default VAD's accuracy (issue 17; docs/vad.md, "Through a call's codec";
bench/vad_opus.py measures every set and condition).

Real speech goes as a browser sends a microphone: up to 48 kHz, through libopus (20 ms frames,
``voip``), decoded by aiortc's decoder, then fed to the ingest's framer
(services/ingest/audio.py) frame by frame as the ingest feeds it. Frame F1 after METRICS.md
§2 against the labels, measured on 2026-12-07 (bench/vad_opus.py's code), 32 kbps unless said:

- the telephone sample (tuning), clean: 0.992 (0.992 before the codec);
- ``mfa_cold_corpus`` (validation: spontaneous speech, a hoarse voice) in white noise at 5 dB:
  0.955; in pink noise at 10 dB at 16 kbps (a congested call): 0.950;
- ``ami_dev00`` (validation: a meeting room's far microphone) in babble at 10 dB: 0.826;
- ``paa_count2`` (held out: counting, long pauses), clean: 0.904.

The bounds are those less 0.01: a regression of the default on decoded audio, or of the
framer's resampling or frame placement, shows as a drop.

Run: ``.venv/bin/python -m pytest tests/component/test_vad_opus.py`` (about ten seconds; the
silero extra and PyAV, both installed by ``make setup``).
"""

from __future__ import annotations

from typing import Any

import pytest

from bench import real_speech
from bench.vad import after_section2, scores

# name, condition, Opus bit rate -> the least F1 after §2 (measured less 0.01)
MINIMA = {
    ("pyannote_sample", "clean", 32_000): 0.982,
    ("mfa_cold_corpus", "white5", 32_000): 0.945,
    ("mfa_cold_corpus", "pink10", 16_000): 0.940,
    ("ami_dev00", "babble10", 32_000): 0.816,
    ("paa_count2", "clean", 32_000): 0.894,
}


@pytest.fixture(scope="module")
def recordings() -> dict[str, real_speech.Recording]:
    found = (real_speech.committed() + real_speech.validation() + real_speech.ami("validation")
             + real_speech.held_out())
    return {r.name: r for r in found}


@pytest.mark.parametrize(("name", "condition", "bitrate"), list(MINIMA))
def test_speech_through_opus_keeps_the_default_accuracy(
        silero_backend: Any, recordings: dict[str, real_speech.Recording],
        name: str, condition: str, bitrate: int) -> None:
    from bench.vad_dialin import ingest_detector, through_opus

    recording = recordings[name]
    audio = real_speech.noisy(recording)[condition]
    decided = after_section2(ingest_detector(silero_backend, False)(
        through_opus(audio, real_speech.SR, bitrate)))
    n = min(len(decided), len(recording.labels))
    # The framer decides every whole frame of the call's audio: none is lost at either end.
    assert abs(len(decided) - len(recording.labels)) <= 2, (len(decided), len(recording.labels))
    f1 = scores(decided[:n], recording.labels[:n])["f1"]
    print(f"{name} {condition} at {bitrate // 1000} kbps: F1 {f1:.3f}")
    assert f1 >= MINIMA[(name, condition, bitrate)], f1
