"""VAD accuracy on narrowband real speech (issue 17): the real recordings of
tests/unit/test_vad_real.py (the tuning ones, the telephone sample and `mfa_acoustic_corpus`;
the three validation ones and the four AMI development and test excerpts, never fitted on),
clean and with white, pink and babble noise at 20/10/5 dB mixed at 16 kHz, then written as
**8 kHz** 16-bit FLAC files (what a telephone line or an 8 kHz recording gives) and read by
``rapport vad``'s own path (services/cli/audio_files.py: a file sampled at 8 kHz or less is
narrowband, and the silero backend adds its 8 kHz network and that network's head,
models/vad_silero.py "Narrowband audio"). Scored per 20 ms frame after METRICS.md §2, each
set's frames pooled per condition.

Bounds are a little under what was measured through this path on 2026-12-05 (docs/vad.md,
"Narrowband audio", has bench/vad_narrowband.py's figures), so a regression fails. The
validation recordings' bounds fail without the 8 kHz network (every condition); the AMI
excerpts' fail with it but without its head, the 16 kHz head deciding in its place (white and
pink noise, 6 of 10 conditions). Skipped without the silero extra, except with ``CI=true``,
where that fails (as tests/unit/test_vad_real.py).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from bench import real_speech
from bench.vad import after_section2
from services.cli.audio_files import narrowband, open_tracks, voiced_batches
from services.ingest.vad_backend import FrameVad, VadBackend

SR, NARROW = 16_000, 8_000
REAL = Path(__file__).resolve().parents[1] / "data" / "real"
# Measured through this path (2026-12-06, narrowband head refitted with noise steps): tuning
# 0.976 clean; white 0.976 / 0.976 / 0.974, pink 0.977 / 0.976 / 0.977, babble 0.967 / 0.941 /
# 0.897 at 20 / 10 / 5 dB
# (bench/vad_narrowband.py, float audio: the best of silero-vad at 8 kHz and webrtcvad 0.963
# clean, 0.874-0.964 in noise).
TUNING_MINIMA = {"clean": 0.965, "white20": 0.965, "white10": 0.964, "white5": 0.964,
                 "pink20": 0.967, "pink10": 0.966, "pink5": 0.966, "babble20": 0.955,
                 "babble10": 0.927, "babble5": 0.885}
# Validation: 0.953 clean; white 0.953 / 0.950 / 0.930, pink 0.953 / 0.950 / 0.948, babble
# 0.951 / 0.936 / 0.853. Without the 8 kHz network (the 16 kHz network alone on the resampled
# audio): white 5 dB 0.659, pink 5 dB 0.833, babble 10 / 5 dB 0.814 / 0.247, and under these
# bounds in every condition.
VALIDATION_MINIMA = {"clean": 0.944, "white20": 0.943, "white10": 0.942, "white5": 0.925,
                     "pink20": 0.943, "pink10": 0.943, "pink5": 0.944, "babble20": 0.943,
                     "babble10": 0.922, "babble5": 0.84}


# AMI development and test excerpts (a meeting room's far microphone), with the narrowband head
# refitted with noise steps (2026-12-06): 0.898 clean; white 0.914 / 0.833 / 0.789, pink 0.861 /
# 0.812 / 0.784, babble 0.839 / 0.819 / 0.839. With the head of 2026-12-05: white 0.900 /
# 0.817 / 0.766, pink 0.841 / 0.777 / 0.735, babble 0.813 / 0.774 / 0.812 (under these bounds
# in 9 conditions); with the 16 kHz head's branch in place of either: white 0.868 / 0.760 /
# 0.729, pink 0.822 / 0.729 / 0.685.
AMI_VALIDATION_MINIMA = {"clean": 0.888, "white20": 0.904, "white10": 0.823, "white5": 0.779,
                         "pink20": 0.851, "pink10": 0.802, "pink5": 0.774, "babble20": 0.829,
                         "babble10": 0.809, "babble5": 0.829}


def require_silero() -> None:
    if not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "silero_vad")):
        if os.environ.get("CI") == "true":
            pytest.fail("silero backend missing in CI: make setup installs it")
        pytest.skip("silero extra not installed: the default falls back to rapport")


def narrowband_f1(recordings: list[real_speech.Recording], backend: VadBackend,
                  directory: Path) -> dict[str, float]:
    """Each recording's conditions as 8 kHz FLAC files through ``rapport vad``'s reader and
    VAD, frames after §2 pooled per condition: F1."""
    predicted: dict[str, list[np.ndarray]] = {}
    truth: dict[str, list[np.ndarray]] = {}
    for recording in recordings:
        for condition, audio in real_speech.noisy(recording).items():
            path = directory / f"{recording.name}-{condition}.flac"
            narrow = np.clip(soxr.resample(audio, SR, NARROW, quality="HQ"), -1, 1)
            sf.write(path, narrow, NARROW, subtype="PCM_16")
            [track] = open_tracks([str(path)], per_channel=False)
            voiced = b"".join(batch.data for batch in voiced_batches(track, backend)).decode()
            frames = np.zeros(len(recording.labels), dtype=bool)
            section2 = after_section2(voiced)[:len(frames)]
            frames[:len(section2)] = section2
            predicted.setdefault(condition, []).append(frames)
            truth.setdefault(condition, []).append(recording.labels)
            path.unlink()
    out = {}
    for condition, frames in predicted.items():
        got, want = np.concatenate(frames), np.concatenate(truth[condition])
        tp = int(np.sum(got & want))
        out[condition] = 2 * tp / (int(got.sum()) + int(want.sum()))
    return out


@pytest.mark.parametrize("use", ["tuning", "validation", "ami-validation"])
def test_the_default_backend_on_narrowband_recordings(use: str, tmp_path: Path) -> None:
    require_silero()
    backend = VadBackend()
    assert backend.running == "silero"
    recordings, minima = {
        "tuning": (real_speech.committed() + real_speech.moved(), TUNING_MINIMA),
        "validation": (real_speech.validation(), VALIDATION_MINIMA),
        "ami-validation": (real_speech.ami("validation"), AMI_VALIDATION_MINIMA)}[use]
    assert recordings
    scores = narrowband_f1(recordings, backend, tmp_path)
    failed = {c: round(f1, 3) for c, f1 in scores.items() if f1 < minima[c]}
    assert not failed, f"F1 under the bound: {failed} (all: {scores})"


def test_only_files_at_8_khz_or_less_are_narrowband(tmp_path: Path) -> None:
    """The narrowband branch is for audio that never had anything above 4 kHz: an 8 kHz file
    gets it, a 16 kHz or 48 kHz one does not (the WebRTC ingest's Opus audio is 48 kHz)."""
    require_silero()
    asked: list[bool] = []

    class Spy(VadBackend):
        def create(self, narrowband: bool = False) -> FrameVad:
            asked.append(narrowband)
            return super().create(narrowband)

    backend = Spy()
    for rate in (8_000, 16_000, 48_000):
        path = tmp_path / f"tone-{rate}.wav"
        sf.write(path, np.zeros(rate // 2, dtype=np.float32), rate, subtype="PCM_16")
        [track] = open_tracks([str(path)], per_channel=False)
        list(voiced_batches(track, backend))
    assert asked == [True, False, False]


@pytest.mark.parametrize("rate", [16_000, 44_100])
def test_telephone_audio_stored_at_a_wideband_rate_is_read_as_narrowband(
        rate: int, tmp_path: Path) -> None:
    """A telephone line's audio saved at a wideband rate holds nothing above 4 kHz: the
    validation recordings in babble at 5 dB, through an 8 kHz line, stored as 16 or 44.1 kHz
    FLAC, are read as narrowband (services/cli/audio_files.py) and scored as the 8 kHz files
    are. Read as wideband, they scored 0.248 (docs/vad.md, "Narrowband audio")."""
    require_silero()
    backend = VadBackend()
    predicted: list[np.ndarray] = []
    truth: list[np.ndarray] = []
    for recording in real_speech.validation():
        audio = real_speech.noisy(recording)["babble5"]
        line = soxr.resample(soxr.resample(audio, SR, NARROW, quality="HQ"), NARROW, rate,
                             quality="HQ")
        path = tmp_path / f"{recording.name}.flac"
        sf.write(path, np.clip(line, -1, 1), rate, subtype="PCM_16")
        [track] = open_tracks([str(path)], per_channel=False)
        assert narrowband(track), recording.name
        voiced = b"".join(batch.data for batch in voiced_batches(track, backend)).decode()
        frames = np.zeros(len(recording.labels), dtype=bool)
        section2 = after_section2(voiced)[:len(frames)]
        frames[:len(section2)] = section2
        predicted.append(frames)
        truth.append(recording.labels)
    got, want = np.concatenate(predicted), np.concatenate(truth)
    f1 = 2 * int(np.sum(got & want)) / (int(got.sum()) + int(want.sum()))
    assert f1 >= VALIDATION_MINIMA["babble5"], f1


def test_wideband_recordings_are_not_read_as_narrowband() -> None:
    """Every real recording here at 16 kHz is wideband (-12 to -36 dB of its power at and
    above 4 kHz) but the telephone sample, a real telephone line stored at 16 kHz (-66 dB),
    which is narrowband; so are 8 kHz files whatever they hold."""
    paths = sorted(REAL.rglob("*.flac"))
    assert len(paths) >= 18
    found = {path.stem: narrowband(open_tracks([str(path)], per_channel=False)[0])
             for path in paths}
    assert found.pop("pyannote_sample") is True
    assert not any(found.values()), found


def test_a_background_noise_switching_on_in_a_telephone_call_is_not_taken_for_speech() -> None:
    """The narrowband path's version of tests/unit/test_vad_real.py's noise step: the CMU
    ARCTIC sentence (validation), then a noise step (``noise_steps`` there), three noise
    samples each (none the head was fitted with), at 8 kHz read as ``rapport vad`` reads an
    8 kHz file. The head of
    2026-12-05 held speech for seconds after such a step (its state term and its negative
    weight on the 8 kHz network's probability); refitted with noise steps among its
    non-speech (bench/vad_narrowband_head.py --step-weight), it lets go. Measured, speech called
    in the 7 s of louder noise, six runs together: 1.0 s; with the head of 2026-12-05 12.2 s."""
    require_silero()
    from test_vad_real import noise_steps

    from bench.vad_narrowband import to_narrowband, upsampled

    backend = VadBackend()
    assert backend.running == "silero"
    recording = {r.name: r for r in real_speech.validation()}["cmu_arctic_a0009"]
    called_ms = 0
    for audio, first in noise_steps(recording, range(50, 53)):
        heard = np.concatenate(upsampled(to_narrowband(audio)))
        vad = backend.create(narrowband=True)
        voiced = "".join(vad.push(heard[i:i + SR]) for i in range(0, len(heard), SR))
        voiced += vad.finish()
        called_ms += voiced[first:].count("1") * 20
    assert called_ms <= 4_000, called_ms
