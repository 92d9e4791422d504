"""``rapport vad`` and ``rapport analyze --audio``: recordings -> the wire events the WebRTC
ingest's audio mode would publish (services/cli/audio_files.py), as a user runs them.

The labelled clips are tests/data/audio (scripts/make_test_audio.py; their JSON holds the
reference speech timing). The other files are written here from those clips: resampled to
8, 44.1 and 48 kHz, as WAV and FLAC, mono and stereo.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import soundfile as sf
import soxr

from models.config import EngineConfig
from models.events import Speech, parse_event
from models.speech import IpuBuilder
from services.cli import main
from services.cli.audio_files import segments
from services.ingest.audio import AudioVadFramer
from services.ingest.frames import FrameBatch

AUDIO = Path(__file__).resolve().parents[1] / "data" / "audio"
FRAME_MS = 20
SR = 16_000  # of the labelled clips


@pytest.fixture(autouse=True)
def rapport_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check the command's path (formats, rates, channels, order, framing) with
    bounds measured with Rapport's own VAD on the generated clips, so they run that VAD
    whatever is installed; the default backend (auto: silero when installed) is measured on
    real speech in tests/unit/test_vad_real.py, and ``--backend silero`` below."""
    monkeypatch.setenv("RAPPORT_VAD_BACKEND", "rapport")


def reference(name: str) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((AUDIO / f"{name}.json").read_text())
    return meta


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def vad_events(argv: list[str], capsys: pytest.CaptureFixture[str]) -> list[Any]:
    code, out, err = run_cli(["vad", *argv], capsys)
    assert code == 0, err
    # Every line is a valid wire event.
    return [parse_event(orjson.loads(line)) for line in out.splitlines()]


def frames(events: list[Any], participant: str, count: int) -> np.ndarray:
    """Voiced flag per 20 ms frame after METRICS.md §2 (what the engine makes of them), from
    the participant's speech events."""
    engine = EngineConfig()
    builder = IpuBuilder(engine.min_pause_ms, engine.min_speech_ms)
    builder.add([(e.start_ms, e.end_ms) for e in events
                 if isinstance(e, Speech) and e.participant_id == participant])
    out = np.zeros(count, dtype=bool)

    def emit(start: int, end: int) -> None:
        out[start // FRAME_MS : end // FRAME_MS] = True

    builder.finish(None, emit)
    return out


def labels(name: str) -> np.ndarray:
    return np.frombuffer(reference(name)["voiced"].encode(), dtype=np.uint8) == ord("1")


def f1(predicted: np.ndarray, truth: np.ndarray) -> float:
    hits = float(np.sum(predicted & truth))
    return 2 * hits / float(np.sum(predicted) + np.sum(truth))


def speech_of(events: list[Any], participant: str) -> list[tuple[int, int]]:
    return [(e.start_ms, e.end_ms) for e in events
            if isinstance(e, Speech) and e.participant_id == participant]


CLEAN = ("f_us_fast_loud", "m_gb_slow_quiet", "f_scot_mid")


@pytest.mark.parametrize("name", CLEAN)
def test_segments_match_the_labelled_speech(name: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    events = vad_events([str(AUDIO / f"{name}.flac")], capsys)
    truth = labels(name)
    # The unit tests of the VAD measure 0.996-0.997 frame accuracy on these clips after §2.
    assert f1(frames(events, name, len(truth)), truth) >= 0.97
    start, end = events[0], events[-1]
    assert (start.type, start.session_id, start.clinic_id) == ("session.start", name, "local")
    assert [(p.participant_id, p.role) for p in start.participants] == [(name, "therapist")]
    info = sf.info(AUDIO / f"{name}.flac")
    # The session ends at the end of the audio, the last sample included.
    assert (end.type, end.ts_ms) == ("session.end", math.ceil(info.frames * 1000 / SR))


def test_speech_events_are_the_voiced_frames_the_ingest_publishes(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The ingest fed the same 16-bit audio in 20 ms decoded frames (as aiortc hands it)
    publishes activity batches whose voiced runs are exactly the command's segments."""
    name = "f_scot_mid"
    pcm, rate = sf.read(AUDIO / f"{name}.flac", dtype="int16")
    framer = AudioVadFramer(0)
    batches: list[FrameBatch] = []
    step = rate * FRAME_MS // 1000
    for pts in range(0, len(pcm), step):
        batches += framer.frame(pcm[pts : pts + step], 1, rate, pts)
    batches += framer.finish()
    ingest_runs = list(segments(batches, EngineConfig().max_segment_ms))
    assert ingest_runs  # the clip has speech
    events = vad_events(["--segments-only", str(AUDIO / f"{name}.flac")], capsys)
    assert speech_of(events, name) == ingest_runs
    assert all(isinstance(e, Speech) for e in events)


@pytest.fixture(scope="module")
def resampled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """f_scot_mid at other rates and formats, 16-bit like the original."""
    directory = tmp_path_factory.mktemp("rates")
    audio, rate = sf.read(AUDIO / "f_scot_mid.flac", dtype="float32")
    files = {"16000.flac": AUDIO / "f_scot_mid.flac"}
    for new_rate, ext in ((8000, "wav"), (8000, "flac"), (44100, "flac"), (48000, "wav")):
        path = directory / f"clip_{new_rate}.{ext}"
        sf.write(path, soxr.resample(audio, rate, new_rate), new_rate, subtype="PCM_16")
        files[f"{new_rate}.{ext}"] = path
    # 32-bit float samples (libsndfile reads those as integers unscaled: all zero).
    path = directory / "clip_float.wav"
    sf.write(path, audio, rate, subtype="FLOAT")
    files["16000_float.wav"] = path
    silence = np.zeros_like(audio)
    for ext in ("wav", "flac"):
        path = directory / f"stereo.{ext}"
        sf.write(path, np.stack([silence, audio], axis=1), rate, subtype="PCM_16")
        files[f"stereo.{ext}"] = path
    return files


@pytest.mark.parametrize("key", ["8000.wav", "8000.flac", "44100.flac", "48000.wav",
                                 "16000_float.wav"])
def test_any_sample_rate_and_format_gives_the_same_segments(
        key: str, resampled: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base_events = vad_events([str(resampled["16000.flac"])], capsys)
    path = resampled[key]
    events = vad_events([str(path)], capsys)
    count = len(labels("f_scot_mid"))
    base, other = frames(base_events, "f_scot_mid", count), frames(events, path.stem, count)
    # After §2 (what the engine measures) the same units, each boundary within two frames
    # (40 ms) of the 16 kHz original's: 8 kHz audio has nothing over 4 kHz.
    base_units, other_units = units(base), units(other)
    assert len(other_units) == len(base_units) >= 3
    assert np.max(np.abs(np.array(other_units) - np.array(base_units))) <= 2
    assert float(np.mean(base == other)) >= 0.99


def units(flags: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(np.int8), [0]))))
    return [(int(s), int(e)) for s, e in edges.reshape(-1, 2)]


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_channels_give_one_participant_per_channel(
        ext: str, resampled: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path = resampled[f"stereo.{ext}"]
    events = vad_events(["--channels", str(path)], capsys)
    start = events[0]
    assert [(p.participant_id, p.role) for p in start.participants] == [
        ("stereo-ch1", "therapist"), ("stereo-ch2", "client")]
    assert speech_of(events, "stereo-ch1") == []  # the silent channel
    mono = speech_of(vad_events([str(resampled["16000.flac"])], capsys), "f_scot_mid")
    assert speech_of(events, "stereo-ch2") == mono
    # Without --channels the channels are averaged into one participant, as the ingest does.
    mixed = vad_events([str(path)], capsys)
    assert [p.participant_id for p in mixed[0].participants] == ["stereo"]
    truth = labels("f_scot_mid")
    assert f1(frames(mixed, "stereo", len(truth)), truth) >= 0.97


def test_each_channel_read_with_the_others_decides_as_its_own_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--channels`` reads a file once for all its channels (services/cli/audio_files.py):
    each channel's events equal those of the same audio given as a file of its own, a quiet
    channel lifted (its level is its own, not the file's) and a silent one silent."""
    (a, rate), (b, _) = (sf.read(AUDIO / f"{n}.flac", dtype="float32")
                         for n in ("f_us_fast_loud", "m_gb_slow_quiet"))
    length = max(len(a), len(b)) + rate  # and a second of silence after both
    channels = np.zeros((length, 3), dtype=np.float32)
    channels[: len(a), 0], channels[: len(b), 1] = a, 0.003 * b  # about -50 dB: lifted
    sf.write(tmp_path / "room.wav", channels, rate, subtype="FLOAT")
    together = vad_events(["--channels", str(tmp_path / "room.wav")], capsys)
    for k, name in enumerate(("first", "second", "third")):
        sf.write(tmp_path / f"{name}.wav", channels[:, k], rate, subtype="FLOAT")
        alone = vad_events([str(tmp_path / f"{name}.wav")], capsys)
        assert speech_of(together, f"room-ch{k + 1}") == speech_of(alone, name)
    assert speech_of(together, "room-ch2") and not speech_of(together, "room-ch3")


def test_options_name_the_session_clinic_and_roles(capsys: pytest.CaptureFixture[str]) -> None:
    a, b = (str(AUDIO / f"{n}.flac") for n in ("f_us_fast_loud", "m_gb_slow_quiet"))
    events = vad_events(["--session", "s-42", "--clinic", "c9", "--roles", "client,therapist",
                         a, b], capsys)
    start = events[0]
    assert (start.session_id, start.clinic_id) == ("s-42", "c9")
    assert [(p.participant_id, p.role) for p in start.participants] == [
        ("f_us_fast_loud", "client"), ("m_gb_slow_quiet", "therapist")]
    assert {e.session_id for e in events} == {"s-42"}
    # The session ends with the longer file.
    assert abs(events[-1].ts_ms - reference("m_gb_slow_quiet")["duration_ms"]) <= 1
    code, out, err = run_cli(["vad", "--roles", "therapist", a, b], capsys)
    assert code == 2 and out == "" and "1 roles given for 2 participants" in err


def reference_talk_s(name: str) -> float:
    return sum(end - start for start, end in reference(name)["speech_ms"]) / 1000


def test_analyze_audio_talk_times_match_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    therapist, client = "f_us_fast_loud", "m_gb_slow_quiet"
    code, out, err = run_cli(["analyze", "--json", "--audio", str(AUDIO / f"{therapist}.flac"),
                              str(AUDIO / f"{client}.flac")], capsys)
    assert code == 0, err
    (report,) = [orjson.loads(line) for line in out.splitlines()]
    assert report["session_id"] == therapist
    assert report["duration_s"] == pytest.approx(reference(client)["duration_ms"] / 1000,
                                                 abs=0.002)
    for role, name in (("therapist", therapist), ("client", client)):
        assert report["roles"][role]["talk_s"] == pytest.approx(reference_talk_s(name),
                                                                abs=0.1)


def test_analyze_audio_equals_vad_piped_into_analyze(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(AUDIO / f"{n}.flac") for n in ("f_scot_mid", "m_gb_slow_quiet")]
    code, events, _ = run_cli(["vad", *files], capsys)
    assert code == 0
    (tmp_path / "events.jsonl").write_text(events)
    assert main(["analyze", "--json", str(tmp_path / "events.jsonl")]) == 0
    piped = capsys.readouterr().out
    assert main(["analyze", "--json", "--audio", *files]) == 0
    assert capsys.readouterr().out == piped


def test_segments_come_in_order_of_end_so_a_stream_takes_them_all(
        capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(AUDIO / f"{n}.flac") for n in ("m_gb_slow_quiet", "f_scot_mid")]
    events = vad_events(["--segments-only", *files], capsys)
    ends = [e.end_ms for e in events]
    assert ends == sorted(ends)
    assert {e.participant_id for e in events} == {"m_gb_slow_quiet", "f_scot_mid"}
    assert main(["analyze", "--json", "--audio", *files]) == 0
    whole = capsys.readouterr().out
    code, out, err = run_cli(["analyze", "--json", "--as-stream", "--audio", *files], capsys)
    assert code == 0 and "0 rejected" in err
    assert out == whole


def test_analyze_audio_of_one_stereo_file_with_channels(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (a, rate), (b, _) = (sf.read(AUDIO / f"{n}.flac", dtype="float32")
                         for n in ("f_us_fast_loud", "m_gb_slow_quiet"))
    both = np.zeros((max(len(a), len(b)), 2), dtype=np.float32)
    both[: len(a), 0], both[: len(b), 1] = a, b
    sf.write(tmp_path / "call.flac", both, rate, subtype="PCM_16")
    code, out, err = run_cli(["analyze", "--json", "--channels", "--audio",
                              str(tmp_path / "call.flac")], capsys)
    assert code == 0, err
    (report,) = [orjson.loads(line) for line in out.splitlines()]
    assert report["roles"]["therapist"]["talk_s"] == pytest.approx(
        reference_talk_s("f_us_fast_loud"), abs=0.1)
    assert report["roles"]["client"]["talk_s"] == pytest.approx(
        reference_talk_s("m_gb_slow_quiet"), abs=0.1)


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.txt"
    text.write_text("session notes, not audio\n")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(7).bytes(4096))
    return {"text": (text, "not an audio file"), "garbage": (garbage, "not an audio file"),
            "missing": (tmp_path / "missing.flac", "no such file")}


@pytest.mark.parametrize("kind", ["text", "garbage", "missing"])
@pytest.mark.parametrize("command", [["vad"], ["analyze", "--audio"]])
def test_a_file_that_is_not_audio_is_a_clear_error_naming_it(
        kind: str, command: list[str], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path, reason = bad_files(tmp_path)[kind]
    # The bad file comes last: every file is checked before anything is printed.
    code, out, err = run_cli([*command, str(AUDIO / "f_scot_mid.flac"), str(path)], capsys)
    assert code == 2
    assert out == ""
    assert str(path) in err and reason in err
    assert "Traceback" not in err


def test_samples_that_are_not_numbers_are_read_as_silence(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """A float WAV can hold NaN and infinity, which the ingest's 16-bit PCM cannot: a stretch
    of NaN reads as the silence it replaces, infinity as full scale, with one WARNING naming
    the file, and no traceback."""
    audio, _ = sf.read(AUDIO / "f_scot_mid.flac", dtype="float32")
    silent = audio.copy()
    silent[SR:2 * SR] = 0.0
    broken = audio.copy()
    broken[SR:2 * SR] = np.nan
    broken[-10:] = np.inf
    sf.write(tmp_path / "silent.wav", silent, SR, subtype="FLOAT")
    sf.write(tmp_path / "broken.wav", broken, SR, subtype="FLOAT")
    count = len(labels("f_scot_mid"))
    expected = frames(vad_events([str(tmp_path / "silent.wav")], capsys), "silent", count)
    with caplog.at_level("WARNING", logger="services.cli.audio_files"):
        got = frames(vad_events([str(tmp_path / "broken.wav")], capsys), "broken", count)
    assert float(np.mean(got == expected)) >= 0.99
    assert ("broken.wav: 16010 samples that are not numbers (NaN or infinity), the first at "
            f"sample {SR}," in caplog.text)


def test_a_terminal_sees_how_far_a_long_run_has_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal, ``rapport vad`` and ``rapport analyze --audio`` show on one rewritten
    stderr line how far each participant's recording has been read, and clear it at the end;
    in a pipe or a log (the usual case, and every other test here) they show nothing. The
    events are the same either way."""
    audio, rate = sf.read(AUDIO / "f_scot_mid.flac", dtype="float32")
    long = np.tile(audio, math.ceil(75 * rate / len(audio)))[: 75 * rate]
    path = tmp_path / "session.flac"
    sf.write(path, long, rate)
    code, quiet_out, quiet_err = run_cli(["vad", str(path)], capsys)
    assert code == 0 and quiet_err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, out, err = run_cli(["vad", str(path)], capsys)
    assert code == 0 and out == quiet_out
    assert err.startswith("\rrapport vad: session 0:10 of 1:15")
    assert "\rrapport vad: session 1:15 of 1:15" in err and err.endswith("\r\x1b[K")
    code, out, err = run_cli(["analyze", "--audio", str(path), str(path)], capsys)
    assert code == 0 and "rapport analyze: session 1:15 of 1:15" in err


def test_analyze_needs_either_a_file_or_audio(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["analyze"], capsys)
    assert code == 2 and "--audio" in err


def test_long_runs_are_cut_at_max_segment_ms() -> None:
    batches = [FrameBatch(seq, seq * 1000, 20, b"1" * 50, "voiced") for seq in range(3)]
    batches.append(FrameBatch(3, 3000, 20, b"0" * 10 + b"1" * 5 + b"0" * 35, "voiced"))
    assert list(segments(batches, 1200)) == [(0, 1200), (1200, 2400), (2400, 3000),
                                             (3200, 3300)]
    assert list(segments(batches, 600_000)) == [(0, 3000), (3200, 3300)]


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None
                    or importlib.util.find_spec("silero_vad") is None,
                    reason="the silero extra is not installed")
def test_silero_backend(capsys: pytest.CaptureFixture[str]) -> None:
    name = "f_scot_mid"
    events = vad_events(["--backend", "silero", str(AUDIO / f"{name}.flac")], capsys)
    truth = labels(name)
    assert f1(frames(events, name, len(truth)), truth) >= 0.9


def test_the_music_gate_is_asked_for_by_flag_or_environment(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A string orchestra (tests/data/real/music, real, public domain): the default silero
    backend calls part of it speech; ``--music-gate`` or ``RAPPORT_VAD_MUSIC_GATE=on`` turns
    on models/vad_music.py's gate and none is left, and ``--no-music-gate`` beats the
    environment."""
    if not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "silero_vad")):
        if os.environ.get("CI") == "true":
            pytest.fail("silero backend missing in CI: make setup installs it")
        pytest.skip("the silero extra is not installed")
    music = str(AUDIO.parent / "real" / "music" / "brahms_hungarian_dance_5.flac")

    def talk(*flags: str) -> float:
        """The share of the 12 s the engine takes for speech (after METRICS.md §2)."""
        events = vad_events(["--backend", "silero", *flags, music], capsys)
        return float(frames(events, "brahms_hungarian_dance_5", 12_000 // FRAME_MS).mean())

    assert talk() >= 0.15  # measured 0.203
    assert talk("--music-gate") <= 0.02  # measured 0
    monkeypatch.setenv("RAPPORT_VAD_MUSIC_GATE", "on")
    assert talk() <= 0.02
    assert talk("--no-music-gate") >= 0.15


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None
                    or importlib.util.find_spec("silero_vad") is None,
                    reason="the silero extra is not installed")
def test_speech_up_to_the_end_of_a_file_is_published(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A real recording cut in the middle of a turn (the telephone sample at 12.007 s, inside
    a turn from 7.6 to 17.9 s): its last segment runs to within the model branch's trim of the
    file's end. Before the VAD's end of stream was read (``finish``), the lookahead and the
    trim kept the last 180-200 ms of every file undecided, never published."""
    audio, rate = sf.read(Path(__file__).resolve().parents[1] / "data" / "real"
                          / "pyannote_sample.flac", dtype="float32")
    cut = audio[: int(12.007 * rate)]
    path = tmp_path / "cut.flac"
    sf.write(path, cut, rate, subtype="PCM_16")
    events = vad_events(["--backend", "silero", str(path)], capsys)
    speech = [e for e in events if isinstance(e, Speech)]
    whole_frames_ms = len(cut) * 1000 // rate // FRAME_MS * FRAME_MS
    assert whole_frames_ms - 130 <= speech[-1].end_ms <= whole_frames_ms, speech[-1]


def two_microphones(tmp_path: Path, bleed_db: float | None, gain_db: float,
                    seed: int = 3) -> tuple[Path, Any]:
    """A stereo FLAC of a conversation built from real voices (bench/crosstalk.py):
    ``mfa_acoustic_corpus``'s speaker on channel 1, the CMU ARCTIC sentence and the telephone
    sample on channel 2, each microphone hearing the other voice through a room ``bleed_db``
    down (``None``: separate rooms)."""
    from bench import real_speech
    from bench.crosstalk import session

    voices = {r.name: r for r in [*real_speech.committed(), *real_speech.validation(),
                                  *real_speech.moved()]}
    built = session([voices["mfa_acoustic_corpus"]],
                    [voices["cmu_arctic_a0009"], voices["pyannote_sample"]],
                    bleed_db, gain_db, seed)
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / "session.flac"
    sf.write(path, np.stack(built.channels, axis=1), SR, subtype="PCM_16")
    return path, built


def analyzed(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    code, out, err = run_cli(["analyze", "--json", "--channels", "--backend", "silero",
                              *argv], capsys)
    assert code == 0, err
    (report,) = [orjson.loads(line) for line in out.splitlines()]
    return report


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None
                    or importlib.util.find_spec("silero_vad") is None,
                    reason="the silero extra is not installed")
def test_a_voice_bleeding_into_the_other_microphone_is_not_counted_as_its_speech(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two microphones in one room, each hearing the other voice 20 dB down (the second 6 dB
    quieter): each participant's own VAD calls the other's voice speech, so much of one
    participant's talk became overlap. Dropped by default (models/crosstalk.py), talk times
    and overlap come back near those of the same conversation in separate rooms;
    --keep-crosstalk shows what they were."""
    room, _ = two_microphones(tmp_path / "room", 20.0, -6.0)
    apart, _ = two_microphones(tmp_path / "apart", None, -6.0)
    report = analyzed(["--audio", str(room)], capsys)
    reference = analyzed(["--audio", str(apart)], capsys)
    for role in ("therapist", "client"):
        assert report["roles"][role]["talk_s"] == pytest.approx(
            reference["roles"][role]["talk_s"], rel=0.1)
    overlap, alone = report["session"]["overlap_s"], reference["session"]["overlap_s"]
    kept = analyzed(["--keep-crosstalk", "--audio", str(room)], capsys)["session"]["overlap_s"]
    assert overlap <= alone + 3.0
    assert kept > alone + 20.0  # what the bleed did


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None
                    or importlib.util.find_spec("silero_vad") is None,
                    reason="the silero extra is not installed")
def test_microphones_in_separate_rooms_are_left_as_their_vads_decided(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No bleed (a telehealth session's two streams), the second microphone 10 dB louder, and
    true overlap between turns: the events are the same with or without crosstalk removal."""
    path, built = two_microphones(tmp_path, None, 10.0, seed=0)
    assert np.sum(built.labels[0] & built.labels[1]) > 25  # over 0.5 s of true overlap
    code, default, err = run_cli(["vad", "--channels", "--backend", "silero", str(path)],
                                 capsys)
    assert code == 0, err
    code, kept, err = run_cli(["vad", "--channels", "--backend", "silero", "--keep-crosstalk",
                               str(path)], capsys)
    assert code == 0, err
    assert default == kept
