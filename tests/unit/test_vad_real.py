"""VAD accuracy on real speech (issue 17): the pyannote.audio wheel's two-speaker telephone
sample with its reference timing (tests/data/real, MIT; bench/real_speech.py; a **tuning**
recording), the recordings of tests/data/real/validation (three Montreal Forced Aligner test
recordings and a CMU ARCTIC sentence, with alignments): `mfa_acoustic_corpus` is **tuning**
data since 2026-12-05 (bench/real_speech.py ``MOVED_TO_TUNING``), the other three
**validation** (never fitted on), and AMI meeting excerpts with RTTM turns (pyannote.audio's
debugging dataset: the train split tests/data/real/ami is tuning data, the development and
test splits tests/data/real/validation/ami are validation), and two **held-out** counting
recordings (tests/data/real/heldout: never tuned, ranked or vetoed on), clean and with white,
pink and babble noise at 20/10/5 dB, scored per 20 ms frame after METRICS.md §2 as the engine
builds IPUs. Each VAD runs as the ingest's audio mode runs it: one 1 s batch per call.

Bounds are a little under what was measured on 2026-12-04 and 2026-12-05 (docs/vad.md), so a
regression fails. The default backend (``auto``) must run the
Silero model here: skipped when its extra is missing, except with ``CI=true`` (make setup
installs it), where that fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bench import real_speech
from models.config import EngineConfig
from models.speech import IpuBuilder
from services.ingest.vad_backend import VadBackend

SR = 16_000
GENERATED = Path(__file__).resolve().parents[1] / "data" / "audio"
# Frame F1 after §2 measured for the default backend (the Silero model's units trimmed, or
# models/vad_head.py's head: models/vad_decision.py; each input without its running offset
# and dominant line, models/vad_offset.py: 2026-12-05, night): 0.988 clean; white 0.987 /
# 0.985 / 0.989, pink 0.989 / 0.988 / 0.985, babble 0.988 / 0.976 / 0.971 at 20 / 10 / 5 dB.
# (The head deciding alone, before: 0.982 clean, 0.977-0.993 in noise.)
DEFAULT_MINIMA = {"clean": 0.978, "white20": 0.977, "white10": 0.975, "white5": 0.978,
                  "pink20": 0.979, "pink10": 0.977, "pink5": 0.97, "babble20": 0.978,
                  "babble10": 0.966, "babble5": 0.966}
# Rapport's own VAD (the fallback), measured: 0.985 clean; white 0.945 / 0.960 / 0.936, pink
# 0.967 / 0.884 / 0.910, babble 0.812 / 0.816 / 0.707.
RAPPORT_MINIMA = {"clean": 0.97, "white20": 0.93, "white10": 0.94, "white5": 0.91,
                  "pink20": 0.95, "pink10": 0.86, "pink5": 0.89, "babble20": 0.79,
                  "babble10": 0.79, "babble5": 0.68}
# Validation recordings (the three not moved to tuning), every one's frames pooled per
# condition, noise mixed against the speech band's power (bench/real_speech.py), measured for
# the default: 0.947 clean; white 0.946 / 0.947 / 0.946, pink 0.946 / 0.950 / 0.946, babble
# 0.947 / 0.941 / 0.834. Without models/vad_offset.py (the evening's default): white 5 dB
# 0.931, babble 10 / 5 dB 0.917 / 0.653, mfa_cold_corpus's drift deafening the model; mixed
# against the whole band, before, white and pink 10 and 5 dB gave 0.595-0.667.
VALIDATION_DEFAULT_MINIMA = {"clean": 0.937, "white20": 0.936, "white10": 0.937,
                             "white5": 0.936, "pink20": 0.936, "pink10": 0.94, "pink5": 0.936,
                             "babble20": 0.937, "babble10": 0.931, "babble5": 0.81}
# ...and each recording clean: measured 0.989, 0.949, 0.938 (the evening's default 0.989,
# 0.942, 0.933; the head alone 0.979, 0.918, 0.928: it bridged pauses of these tightly
# aligned recordings).
VALIDATION_CLEAN_MINIMA = {"cmu_arctic_a0009": 0.975, "mfa_cold_corpus": 0.939,
                           "mfa_cold_corpus3": 0.928}
# The recording moved to tuning (mfa_acoustic_corpus), measured: 0.977 clean; white 0.977 /
# 0.972 / 0.963, pink 0.977 / 0.979 / 0.968, babble 0.975 / 0.912 / 0.859.
MOVED_DEFAULT_MINIMA = {"clean": 0.966, "white20": 0.967, "white10": 0.962, "white5": 0.953,
                        "pink20": 0.967, "pink10": 0.968, "pink5": 0.954, "babble20": 0.965,
                        "babble10": 0.905, "babble5": 0.855}
# Rapport's own VAD there (the three validation recordings), measured: 0.826 clean; white
# 0.766 / 0.744 / 0.753, pink 0.818 / 0.719 / 0.731, babble 0.786 / 0.663 / 0.612.
VALIDATION_RAPPORT_MINIMA = {"clean": 0.80, "white20": 0.745, "white10": 0.72, "white5": 0.73,
                             "pink20": 0.795, "pink10": 0.70, "pink5": 0.71, "babble20": 0.765,
                             "babble10": 0.64, "babble5": 0.59}

# AMI excerpts, each split's frames pooled per condition, measured for the default: tuning
# 0.933 clean; white 0.917 / 0.895 / 0.883, pink 0.889 / 0.867 / 0.837, babble 0.877 / 0.868 /
# 0.826 at 20 / 10 / 5 dB. Validation 0.916 clean; white 0.876 / 0.793 / 0.755, pink 0.827 /
# 0.751 / 0.703, babble 0.856 / 0.818 / 0.812: at least silero-vad and webrtcvad in every
# condition (docs/vad.md; the best of them 0.856 clean, 0.704-0.824 in noise). The model alone
# scored 0.865 clean and 0.618-0.771 in noise there; the head deciding alone (before
# 2026-12-05 evening) 0.917 and 0.792-0.904, bridging near-field pauses for it.
AMI_DEFAULT_MINIMA = {
    "tuning": {"clean": 0.923, "white20": 0.907, "white10": 0.885, "white5": 0.872,
               "pink20": 0.879, "pink10": 0.855, "pink5": 0.823, "babble20": 0.866,
               "babble10": 0.861, "babble5": 0.818},
    "validation": {"clean": 0.906, "white20": 0.866, "white10": 0.783, "white5": 0.747,
                   "pink20": 0.822, "pink10": 0.743, "pink5": 0.699, "babble20": 0.846,
                   "babble10": 0.811, "babble5": 0.802},
}
# Held out (tests/data/real/heldout: two counting recordings, hand-labelled; never tuned or
# ranked on), pooled, measured through this file's harness on 2026-12-07: 0.874 clean (0.828
# when first scored, before a stream's leading digital silence stopped setting the band floor,
# which they led to: docs/vad.md, "Held out"); white 0.855 / 0.831 / 0.776, pink 0.870 /
# 0.850 / 0.844. Babble of the speaker's own voice is left out: at 10 and 5 dB every detector
# calls nearly every frame speech there (0.68-0.70, what calling all of it speech scores).
HELD_OUT_DEFAULT_MINIMA = {"clean": 0.864, "white20": 0.845, "white10": 0.821, "white5": 0.766,
                           "pink20": 0.86, "pink10": 0.84, "pink5": 0.834}


def section2_f1(voiced: str, labels: np.ndarray) -> float:
    predicted = section2_frames(voiced, len(labels))
    hits = float(np.sum(predicted & labels))
    return 2 * hits / float(np.sum(predicted) + np.sum(labels))


def section2_frames(voiced: str, frames: int) -> np.ndarray:
    """The 20 ms frames covered by the IPUs METRICS.md §2 builds from ``voiced``."""
    engine = EngineConfig()
    builder = IpuBuilder(engine.min_pause_ms, engine.min_speech_ms)
    flags = np.frombuffer(voiced.encode(), dtype=np.uint8) == ord("1")
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(np.int8), [0]))))
    builder.add([(int(s) * 20, int(e) * 20) for s, e in edges.reshape(-1, 2)])
    predicted = np.zeros(frames, dtype=bool)

    def emit(start: int, end: int) -> None:
        predicted[start // 20 : end // 20] = True

    builder.finish(None, emit)
    return predicted


def run(backend: VadBackend, audio: np.ndarray) -> str:
    vad = backend.create()
    return "".join(vad.push(audio[at:at + SR]) for at in range(0, len(audio), SR))


@pytest.fixture(scope="module")
def conditions() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    [recording] = real_speech.committed()
    assert recording.labels.sum() > 20 * 50  # 20 s of the 30 s are speech
    return recording.labels, real_speech.noisy(recording)


def require_silero() -> None:
    if not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "silero_vad")):
        if os.environ.get("CI") == "true":
            pytest.fail("silero backend missing in CI: make setup installs it")
        pytest.skip("silero extra not installed: the default falls back to rapport")


def test_the_default_backend_is_accurate_on_real_speech(
        conditions: tuple[np.ndarray, dict[str, np.ndarray]]) -> None:
    require_silero()
    labels, audio = conditions
    backend = VadBackend()
    assert backend.running == "silero"
    scores = {name: section2_f1(run(backend, clip), labels) for name, clip in audio.items()}
    failed = {name: round(f1, 3) for name, f1 in scores.items() if f1 < DEFAULT_MINIMA[name]}
    assert not failed, f"F1 under the bound: {failed} (all: {scores})"


def test_rapports_own_vad_on_real_speech(
        conditions: tuple[np.ndarray, dict[str, np.ndarray]]) -> None:
    labels, audio = conditions
    backend = VadBackend("rapport")
    scores = {name: section2_f1(run(backend, clip), labels) for name, clip in audio.items()}
    failed = {name: round(f1, 3) for name, f1 in scores.items() if f1 < RAPPORT_MINIMA[name]}
    assert not failed, f"F1 under the bound: {failed} (all: {scores})"


def test_the_labels_are_the_rttm_turns() -> None:
    # 10 turns, first at 6.69 s, last ending at 30.0 s; overlaps counted once.
    [recording] = real_speech.committed()
    assert len(recording.audio) == 30 * SR
    assert not recording.labels[:334].any() and recording.labels[334:356].all()
    assert recording.labels[-1]


@pytest.fixture(scope="module")
def validation() -> list[tuple[str, np.ndarray, dict[str, np.ndarray]]]:
    recordings = real_speech.validation()
    assert len(recordings) == 3
    return [(r.name, r.labels, real_speech.noisy(r)) for r in recordings]


def run_all(backend: VadBackend, clips: list[np.ndarray]) -> list[str]:
    """:func:`run` on each clip; with the silero backend, every clip one stream of one
    :class:`~models.vad_silero.SileroBatchVad` fed the same 1 s batches (the same decisions
    as each alone: tests/unit/test_vad_silero.py; several times faster)."""
    if backend.running != "silero":
        return [run(backend, clip) for clip in clips]
    from models.vad_silero import SileroBatchVad
    batch = SileroBatchVad(len(clips), frame_ms=backend.config.frame_ms)
    out = [""] * len(clips)
    for at in range(0, max(len(clip) for clip in clips), SR):
        decided = batch.push([clip[at:at + SR] if at < len(clip) else None for clip in clips])
        out = [done + new for done, new in zip(out, decided, strict=True)]
    return out


def pooled_f1(backend: VadBackend,
              recordings: list[tuple[str, np.ndarray, dict[str, np.ndarray]]]
              ) -> dict[str, float]:
    """Frame F1 after §2 per condition, every recording's frames pooled."""
    hits: dict[str, float] = {}
    total: dict[str, float] = {}
    items = [(labels, name, clip) for _, labels, audio in recordings
             for name, clip in audio.items()]
    voiced = run_all(backend, [clip for _, _, clip in items])
    for (labels, name, _), decided in zip(items, voiced, strict=True):
        predicted = section2_frames(decided, len(labels))
        hits[name] = hits.get(name, 0.0) + float(np.sum(predicted & labels))
        total[name] = total.get(name, 0.0) + float(np.sum(predicted) + np.sum(labels))
    return {name: 2 * hits[name] / total[name] for name in hits}


def test_the_default_backend_holds_on_the_validation_recordings(
        validation: list[tuple[str, np.ndarray, dict[str, np.ndarray]]]) -> None:
    require_silero()
    backend = VadBackend()
    assert backend.running == "silero"
    scores = pooled_f1(backend, validation)
    failed = {name: round(f1, 3) for name, f1 in scores.items()
              if f1 < VALIDATION_DEFAULT_MINIMA[name]}
    assert not failed, f"F1 under the bound: {failed} (all: {scores})"
    clean = {name: section2_f1(run(backend, audio["clean"]), labels)
             for name, labels, audio in validation}
    failed = {name: round(f1, 3) for name, f1 in clean.items()
              if f1 < VALIDATION_CLEAN_MINIMA[name]}
    assert not failed, f"clean F1 under the bound: {failed} (all: {clean})"


def test_the_default_backend_on_the_held_out_recordings() -> None:
    require_silero()
    backend = VadBackend()
    assert backend.running == "silero"
    held_out = [(r.name, r.labels, {name: audio for name, audio in real_speech.noisy(r).items()
                                    if name in HELD_OUT_DEFAULT_MINIMA})
                for r in real_speech.held_out()]
    assert [name for name, _, _ in held_out] == ["paa_count", "paa_count2"]
    scores = pooled_f1(backend, held_out)
    failed = {name: round(f1, 3) for name, f1 in scores.items()
              if f1 < HELD_OUT_DEFAULT_MINIMA[name]}
    assert not failed, f"F1 under the bound: {failed} (all: {scores})"


def long_stream_f1(validation: list[tuple[str, np.ndarray, dict[str, np.ndarray]]],
                   condition: str, **options: int) -> float:
    """The three validation recordings in ``condition``, back to back, four times over (3.6
    minutes), one stream of the silero backend (``options``: its restart rule) in 1 s batches
    as the ingest feeds it: frame F1 after §2 of the last time through, pooled."""
    from models.vad_silero import StreamingSileroVad, load_model
    model = load_model()
    clips = [audio[condition][: len(audio[condition]) // 320 * 320].astype(np.float32)
             for _, _, audio in validation]
    stream = np.tile(np.concatenate(clips), 4)
    last = 3 * sum(len(clip) // 320 for clip in clips)  # the last time through, in frames
    labels = np.concatenate([np.resize(labels, len(clip) // 320) for clip, (_, labels, _) in
                             zip(clips, validation, strict=True)])
    assert all(len(labels) == len(clip) // 320 for clip, (_, labels, _) in
               zip(clips, validation, strict=True))
    vad = StreamingSileroVad(model=model, **options)
    voiced = "".join(vad.push(stream[at:at + SR]) for at in range(0, len(stream), SR))
    predicted = section2_frames(voiced + vad.finish(), len(stream) // 320)[last:]
    return 2 * float(np.sum(predicted & labels)) / float(np.sum(predicted) + np.sum(labels))


def test_the_default_backend_does_not_go_deaf_in_a_long_stream(
        validation: list[tuple[str, np.ndarray, dict[str, np.ndarray]]]) -> None:
    """A long stream (models/vad_silero.py, "Long streams"; :func:`long_stream_f1`) in white
    noise at 5 dB. Measured 0.935 (each alone, fresh: 0.946). With the network's state
    carried through the whole stream instead, as the backend did before and silero-vad does,
    0.128: after the CMU ARCTIC sentence the model heard nothing of either `mfa_cold_corpus`
    recording, then or ever after."""
    require_silero()
    scores = {restart: long_stream_f1(validation, "white5", restart=restart)
              for restart in (938, 0)}  # the default, and never
    assert scores[938] >= 0.91, scores
    assert scores[0] < 0.3, scores  # what the restarts prevent


def test_a_state_gone_deaf_after_a_restart_is_probed_back(
        validation: list[tuple[str, np.ndarray, dict[str, np.ndarray]]]) -> None:
    """The same stream in pink noise at 10 dB (models/vad_restart.py, the probes): restarted
    shortly before the CMU ARCTIC sentence, the state heard it, then none of `mfa_cold_corpus`
    (without probes 0.677 pooled; 0.673 with the 1 s warm-up of 2026-12-06, F1 0.011 on that
    recording). Probing after 1 s of quiet finds a fresh state that hears it: measured 0.957
    pooled (each alone, fresh: 0.949)."""
    require_silero()
    scores = {probe: long_stream_f1(validation, "pink10", probe=probe) for probe in (31, 0)}
    assert scores[31] >= 0.93, scores
    assert scores[0] < 0.75, scores  # what the probes prevent


def test_the_default_backend_on_the_recording_moved_to_tuning() -> None:
    require_silero()
    [recording] = real_speech.moved()
    backend = VadBackend()
    assert backend.running == "silero"
    scores = pooled_f1(backend, [(recording.name, recording.labels,
                                  real_speech.noisy(recording))])
    failed = {name: round(f1, 3) for name, f1 in scores.items()
              if f1 < MOVED_DEFAULT_MINIMA[name]}
    assert not failed, f"F1 under the bound: {failed} (all: {scores})"


def test_rapports_own_vad_on_the_validation_recordings(
        validation: list[tuple[str, np.ndarray, dict[str, np.ndarray]]]) -> None:
    scores = pooled_f1(VadBackend("rapport"), validation)
    failed = {name: round(f1, 3) for name, f1 in scores.items()
              if f1 < VALIDATION_RAPPORT_MINIMA[name]}
    assert not failed, f"F1 under the bound: {failed} (all: {scores})"


def test_validation_labels_are_the_aligned_words_as_section2_builds_ipus() -> None:
    units = {r.name: r for r in real_speech.validation() + real_speech.moved()}
    # CMU ARCTIC: one sentence, phones from 0.13 s to 2.925 s, "pau"/"sil" around it.
    arctic = units["cmu_arctic_a0009"].labels
    assert not arctic[:6].any() and arctic[7:146].all() and not arctic[147:].any()
    # MFA: the first word at 1.05 s; the cough (<vocnoise>, 17.56-17.92 s) is not speech.
    assert not units["mfa_acoustic_corpus"].labels[:52].any()
    assert units["mfa_acoustic_corpus"].labels[53]
    assert not units["mfa_cold_corpus3"].labels[878:896].any()


def test_noise_is_mixed_against_the_voice_not_the_rumble_under_it() -> None:
    """SNR and babble take the labelled speech above 50 Hz (bench/real_speech.py): drift under
    it (here 3 Hz, ten times the voice's power, as ``mfa_cold_corpus`` carries) neither makes
    the noise louder nor becomes babble."""
    [recording] = real_speech.committed()
    drift = 0.5 * np.sin(2 * np.pi * 3 * np.arange(len(recording.audio)) / SR)
    speech = recording.audio[real_speech.speech_mask(recording)]
    assert np.mean(drift**2) > 10 * np.mean(speech**2)
    drifting = real_speech.Recording("drifting", (recording.audio + drift).astype(np.float32),
                                     recording.labels, "tuning")
    assert real_speech.rumble_share(drifting) > 0.9 > 0.01 > real_speech.rumble_share(recording)
    for kind in ("white20", "pink10", "babble5"):
        plain = real_speech.noisy(recording)[kind] - recording.audio
        added = real_speech.noisy(drifting)[kind] - drifting.audio
        assert np.sqrt(np.mean(added**2)) == pytest.approx(np.sqrt(np.mean(plain**2)), rel=0.02)
    babble = real_speech.babble(drifting, SR * 10, 7)
    assert np.allclose(babble, real_speech.babble(recording, SR * 10, 7), atol=1e-3)


def test_alignment_units_bridge_short_pauses_and_drop_noise() -> None:
    words = [(0.0, 0.5, ""), (0.5, 0.9, "so"), (0.9, 1.05, ""), (1.05, 1.4, "this"),
             (1.4, 1.7, "sil"), (1.7, 1.75, "uh"), (1.75, 2.0, ""), (2.0, 2.3, "<vocnoise>"),
             (2.3, 2.6, "pau"), (2.6, 3.0, "[adif]")]
    # 150 ms pause bridged, 300 ms kept; the 50 ms "uh" alone is dropped (under 100 ms);
    # the noise mark is not speech; a cut-off word in brackets is.
    assert real_speech.alignment_units(words) == [(0.5, 1.4), (2.6, 3.0)]


def test_ten_vads_test_set_is_read_split_and_labelled_as_section2_builds_ipus(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/vad.py and bench/vad_branches.py read TEN VAD's test set (not committed: its
    licence) from ``$RAPPORT_TEN_TESTSET``: clips in its own format (``.scv``: the name, then
    start,end,label triples) become recordings named by number, odd ones the choice half and
    even ones the validation half, labelled as alignments are (a 100 ms pause bridged, a
    300 ms one kept); absent, there are none; a malformed label file is refused."""
    monkeypatch.setenv("RAPPORT_TEN_TESTSET", str(tmp_path / "absent"))
    assert real_speech.ten() == []
    monkeypatch.setenv("RAPPORT_TEN_TESTSET", str(tmp_path))
    for number in (1, 2):
        name = f"testset-audio-{number:02d}"
        sf.write(tmp_path / f"{name}.wav", np.zeros(SR * 3, dtype=np.float32), SR,
                 subtype="PCM_16")
        (tmp_path / f"{name}.scv").write_text(
            f"{name},0.000,0.500,0,0.500,1.000,1,1.000,1.100,0,1.100,1.600,1,"
            f"1.600,1.900,0,1.900,2.400,1,2.400,3.000,0\n")
    choice, validation = real_speech.ten("choice"), real_speech.ten("validation")
    assert [r.name for r in choice] == ["ten01"] and [r.name for r in validation] == ["ten02"]
    assert [r.name for r in real_speech.ten()] == ["ten01", "ten02"]
    labels = choice[0].labels
    assert len(labels) == 150 and labels[25:80].all() and not labels[80:95].any()
    assert labels[95:120].all() and not labels[:25].any() and not labels[120:].any()
    (tmp_path / "testset-audio-01.scv").write_text("testset-audio-01,0.0,1.0\n")
    with pytest.raises(ValueError, match="triples"):
        real_speech.ten()


@pytest.mark.parametrize("use", ["tuning", "validation"])
def test_the_default_backend_on_ami_meeting_excerpts(use: str) -> None:
    require_silero()
    recordings = real_speech.ami(use)
    assert len(recordings) == {"tuning": 10, "validation": 4}[use]
    backend = VadBackend()
    assert backend.running == "silero"
    scores = pooled_f1(backend, [(r.name, r.labels, real_speech.noisy(r)) for r in recordings])
    failed = {name: round(f1, 3) for name, f1 in scores.items()
              if f1 < AMI_DEFAULT_MINIMA[use][name]}
    assert not failed, f"F1 under the bound: {failed} (all: {scores})"


def test_ami_labels_are_the_union_of_the_rttm_turns() -> None:
    excerpts = {r.name: r for r in real_speech.ami("validation")}
    # ami_dev00: the first turn 1.44-13.312 s, then 13.152-16.922 s overlapping it (counted
    # once); the next turn starts at 18.064 s.
    labels = excerpts["ami_dev00"].labels
    assert not labels[:72].any() and labels[72:846].all() and not labels[846:903].any()
    assert labels[903]
    # ami_tst00: turns from 0 s to the end but for one 80 ms gap at 25.26 s.
    assert np.flatnonzero(~excerpts["ami_tst00"].labels).tolist() == [1263, 1264, 1265, 1266]



def talk_ratio(backend: VadBackend, audio: np.ndarray, labels: np.ndarray) -> float:
    """Talk time after §2 over the labels' (1: exact)."""
    return float(section2_frames(run(backend, audio), len(labels)).sum() / labels.sum())


def test_the_default_backend_lets_go_in_the_silence_after_a_phrase() -> None:
    """What a platform's noise suppression sends between phrases is digital silence. The
    head's state term remembers recent speech, and uncapped (models/vad_head.py
    ``STATE_CAP``) it held speech into such silence. Measured talk time over the labels, the
    real recordings silenced outside their labelled speech: 0.997 (telephone), 0.979, 0.981,
    1.006 (validation; the head deciding alone 1.015, 1.014, 1.027, 1.017, uncapped up to
    1.043); the test set's clean generated clips (espeak-ng, silent between phrases): 1.108,
    1.135, 1.017 (the head alone 1.103, 1.135, 1.056; uncapped 1.113, 1.264, 1.079). Under 1:
    the model branch's units are trimmed (models/vad_decision.py), which in digital silence
    also takes the last frames of a phrase; the lower bound keeps that small."""
    require_silero()
    backend = VadBackend()
    assert backend.running == "silero"
    for recording in real_speech.committed() + real_speech.validation():
        silenced = recording.audio * real_speech.speech_mask(recording)
        ratio = talk_ratio(backend, silenced, recording.labels)
        assert 0.965 <= ratio <= 1.04, (recording.name, ratio)
    for path in sorted(GENERATED.glob("*.json")):
        meta = json.loads(path.read_text())
        if meta["noise"] is None:
            audio, _ = sf.read(path.with_suffix(".flac"), dtype="float32")
            labels = np.frombuffer(meta["voiced"].encode(), dtype=np.uint8) == ord("1")
            ratio = talk_ratio(backend, audio, labels)
            assert 1.0 <= ratio <= 1.16, (path.stem, ratio)


def noise_steps(recording: real_speech.Recording, seeds: range
                ) -> Iterator[tuple[np.ndarray, int]]:
    """A fan or an air conditioner switching on in a pause: ``recording``, 3 s of faint noise,
    then 7 s of steady noise 25 dB louder (white, -45 to -20 dBFS; pink, -65 to -40 dBFS), one
    of each kind per seed. Yields the audio (16 kHz) and the first 20 ms frame of the louder
    noise."""

    def at(noise: np.ndarray, dbfs: float) -> np.ndarray:
        return noise / np.sqrt(np.mean(noise**2)) * 10 ** (dbfs / 20)

    for seed in seeds:
        rng = np.random.default_rng(seed)
        for kind, before, after in [("white", -45, -20), ("pink", -65, -40)]:
            step = rng.standard_normal(7 * SR) if kind == "white" else \
                real_speech.pink(7 * SR, seed + 10)
            lead = np.concatenate((recording.audio, at(rng.standard_normal(3 * SR), before)))
            yield (np.concatenate((lead, at(step, after))).astype(np.float32),
                   len(lead) // (SR // 50))


def test_a_background_noise_switching_on_is_not_taken_for_speech() -> None:
    """The telephone sample, then a noise step (:func:`noise_steps`), three noise samples
    each. The head reads how far each band stands over its floor, and a floor that took 3 s to
    follow such a step called most of those 3 s speech (models/vad_bands.py, "A steady
    background"). Measured, the speech called in the 7 s of the louder noise, all six runs
    together: 6.1 s (0.5-1.9 s per run); with the floor of the 3 s minimum alone 17.7 s
    (2.9-3.0 s per run)."""
    require_silero()
    backend = VadBackend()
    assert backend.running == "silero"
    [recording] = real_speech.committed()
    called_ms = 0
    for audio, first in noise_steps(recording, range(3)):
        vad = backend.create()
        voiced = "".join(vad.push(audio[i:i + SR]) for i in range(0, len(audio), SR))
        voiced += vad.finish()
        called_ms += voiced[first:].count("1") * 20
    assert called_ms <= 9_000, called_ms
