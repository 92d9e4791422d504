"""A participant who dials in, declared in the offer (``"telephone": true``): the WebRTC
ingest's audio mode runs the backend's narrowband VAD on their audio (issue 17; docs/vad.md,
"Participants who dial in"; bench/vad_dialin.py measures every set and condition).

Real speech goes as a dial-in participant's does: down to 8 kHz (the telephone line), up to
48 kHz (the gateway), through Opus at 32 kbps, decoded by aiortc's decoder, then fed to the
ingest's framer (services/ingest/audio.py) frame by frame as the ingest feeds it. Frame F1 after
METRICS.md §2 against the labels, measured on 2026-12-06 (bench/vad_dialin.py's code):

- ``mfa_cold_corpus`` (validation: spontaneous speech, a hoarse voice), declared / not:
  white noise at 5 dB 0.951 / 0.795, babble at 10 dB 0.956 / 0.811, babble at 5 dB
  0.905 / 0.000 (the 16 kHz network hears nothing of that voice through a line);
- the telephone sample (tuning: a real line, two speakers), clean: 0.993 / 0.992.

The bounds are those less 0.01: a regression of the narrowband VAD on such audio, or the
framer's resampling, shows as a drop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import soundfile as sf

from bench import real_speech
from bench.vad import after_section2, scores
from services.ingest.vad_backend import NARROWBAND_MAX_RATE

# name, condition -> the least F1 after §2 when declared (measured less 0.01)
MINIMA = {
    ("mfa_cold_corpus", "white5"): 0.941,
    ("mfa_cold_corpus", "babble10"): 0.946,
    ("mfa_cold_corpus", "babble5"): 0.895,
    ("pyannote_sample", "clean"): 0.983,
}


@pytest.fixture(scope="module")
def recordings() -> dict[str, real_speech.Recording]:
    found = real_speech.validation() + real_speech.committed()
    return {r.name: r for r in found}


@pytest.mark.parametrize(("name", "condition"), list(MINIMA))
def test_a_declared_dial_in_participant_keeps_the_narrowband_accuracy(
        silero_backend: Any, recordings: dict[str, real_speech.Recording],
        name: str, condition: str) -> None:
    from bench.vad_dialin import ingest_detector, through_opus, to_narrowband

    recording = recordings[name]
    audio = real_speech.noisy(recording)[condition]
    frames = through_opus(to_narrowband(audio), NARROWBAND_MAX_RATE, 32_000)
    f1 = {}
    for declared in (True, False):
        decided = after_section2(ingest_detector(silero_backend, declared)(frames))
        n = min(len(decided), len(recording.labels))
        f1[declared] = scores(decided[:n], recording.labels[:n])["f1"]
    print(f"{name} {condition}: declared {f1[True]:.3f}, not declared {f1[False]:.3f}")
    assert f1[True] >= MINIMA[(name, condition)], f1


def cli_frames(out: str, count: int) -> np.ndarray:
    """Voiced flag per 20 ms frame, after §2, of ``rapport vad``'s speech events."""
    voiced = np.zeros(count, dtype=np.uint8)
    for line in out.splitlines():
        event = orjson.loads(line)
        if event["type"] == "speech":
            voiced[event["start_ms"] // 20:event["end_ms"] // 20] = 1
    return after_section2("".join(map(str, voiced)))[:count]


def test_rapport_vad_reads_a_participant_named_by_telephone_as_narrowband(
        silero_backend: Any, recordings: dict[str, real_speech.Recording],
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A call's recording of a dial-in participant (48 kHz, after Opus: the codec's fill above
    4 kHz makes the file's own check read it as wideband). Named by ``--telephone`` it runs the
    narrowband path: frame F1 after §2 0.951 against 0.795 (2026-12-06; ``mfa_cold_corpus``
    in white noise at 5 dB). A name that is no participant's stops the command naming the
    option and the participants."""
    from bench.vad_dialin import through_opus, to_narrowband
    from services.cli import main

    recording = recordings["mfa_cold_corpus"]
    frames = through_opus(to_narrowband(real_speech.noisy(recording)["white5"]),
                          NARROWBAND_MAX_RATE, 32_000)
    stereo = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).reshape(-1, 2)
    path = tmp_path / "client.wav"
    sf.write(path, stereo, 48_000, subtype="PCM_16")
    f1 = {}
    for declared in (True, False):
        options = ["--telephone", "client"] if declared else []
        assert main(["vad", "--backend", "silero", *options, str(path)]) == 0
        found = cli_frames(capsys.readouterr().out, len(recording.labels))
        f1[declared] = scores(found, recording.labels[:len(found)])["f1"]
    with capsys.disabled():
        print(f"rapport vad: --telephone {f1[True]:.3f}, without {f1[False]:.3f}")
    assert f1[True] >= 0.941, f1
    assert main(["vad", "--telephone", "therapist", str(path)]) == 2
    error = capsys.readouterr().err
    assert "telephone: no participant 'therapist'" in error and "client" in error
