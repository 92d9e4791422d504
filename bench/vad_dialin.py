"""Participants who dial in: the WebRTC ingest's VAD on telephone audio that reached it
through a gateway and Opus (issue 17, "the ingest's dial-in").

A telehealth platform bridges a participant who joins by telephone into the call: the line
carries 8 kHz audio, a gateway samples it up to 48 kHz and the call's Opus carries it on, so
the ingest decodes 48 kHz audio whose band above 4 kHz holds only the codec's fill. Read as
wideband audio, the default loses much of such speech in noise (docs/vad.md, "Narrowband audio":
on the MFA and ARCTIC recordings at babble 5 dB the 16 kHz network alone scores 0.247). The
offer's ``"telephone": true`` (services/ingest/signaling.py) tells the ingest; it then runs
the backend's narrowband VAD on that participant's audio (models/vad_silero.py, "Narrowband
audio"), as ``rapport vad`` does on an 8 kHz file.

Every real speech set of bench/vad_narrowband.py (:data:`SETS`), clean and with white, pink
and babble noise at 20 / 10 / 5 dB (noise sample 0, mixed at 16 kHz), goes down to 8 kHz (the
line), up to 48 kHz (the gateway; soxr) and through Opus (libopus, 20 ms frames, ``voip``,
``--bitrate``, 32 kbps by default as browsers send speech; decoded by aiortc's own decoder as
the ingest decodes it). Then, per set pooled, frame F1 after METRICS.md §2 of:

- ``declared``: the ingest's framer (services/ingest/audio.py ``AudioVadFramer``) fed the
  decoded frames as the ingest feeds them, with the narrowband VAD (the participant declared
  to have dialled in);
- ``not declared``: the same framer not told (what every dial-in participant got before);
- ``8 kHz file``: the default on the line's 8 kHz audio itself, no codec (bench/
  vad_narrowband.py's ``default``): what the codec costs;
- the rivals, silero-vad (its 8 kHz network) and webrtcvad (modes 0-3) at 8 kHz on the
  decoded audio brought back to 8 kHz: they are given the line's rate.

The narrowband VAD reads every other sample of the 16 kHz audio, so the codec's fill above
4 kHz folds into the 8 kHz network's band. Bringing the decoded audio down to 8 kHz first
(soxr, 48 -> 8 -> 16 kHz) was measured in a scratch run (2026-12-06, the tuning sets and the
validation sets in the same run): on the tuning sets no better (the tuning recordings at babble
5 dB 0.875 against 0.911, every other condition within 0.004 either way), so the ingest does not
do it.

After each table, whether ``declared`` is at least the best rival in each condition. Nothing
here was fitted or ranked on: the narrowband VAD is the one bench/vad_narrowband.py and
bench/vad_narrowband_head.py chose on 8 kHz audio (which sets are tuning and which validation
is bench/real_speech.py's).

Usage: ``.venv/bin/python bench/vad_dialin.py [--sets tuning,...] [--bitrate 32000]`` (about
five minutes on one core with TEN VAD's test set; its halves are skipped with a note when
absent).
"""

from __future__ import annotations

import argparse
import fractions
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import soxr
from aiortc.codecs.opus import OpusDecoder
from aiortc.jitterbuffer import JitterFrame

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import real_speech  # noqa: E402
from bench.vad import after_section2, scores  # noqa: E402
from bench.vad_narrowband import (  # noqa: E402
    SETS,
    TITLES,
    backend_detector,
    silero_upstream_detector,
    to_narrowband,
    webrtc_detector,
)
from services.ingest.audio import CONCEAL_S, AudioVadFramer, gap_fill  # noqa: E402
from services.ingest.vad_backend import NARROWBAND_MAX_RATE, VadBackend  # noqa: E402

SR = real_speech.SR
CALL_RATE = 48_000  # Opus in WebRTC
OPUS_FRAME = CALL_RATE // 50  # 20 ms


def through_opus(audio: np.ndarray, rate: int, bitrate: int, loss: float = 0.0,
                 seed: int = 0) -> list[av.AudioFrame]:
    """Audio at ``rate`` as the ingest receives it from a call: up to 48 kHz (for the line's
    8 kHz audio, the gateway), Opus-encoded in 20 ms frames at ``bitrate`` (``voip``) and
    decoded by aiortc's decoder (s16, stereo, pts in samples). ``loss``: the share of packets
    lost on the way, each independently (seeded by ``seed``; never the first): their frames
    are missing, as aiortc, which conceals nothing, leaves them."""
    up = soxr.resample(audio, rate, CALL_RATE, quality="HQ")
    pcm = np.clip(np.round(up * 32767), -32768, 32767).astype(np.int16)
    pcm = np.concatenate([pcm, np.zeros(-len(pcm) % OPUS_FRAME, dtype=np.int16)])
    encoder = av.CodecContext.create("libopus", "w")
    encoder.bit_rate = bitrate
    encoder.format = "s16"
    encoder.layout = "mono"
    encoder.sample_rate = CALL_RATE
    encoder.time_base = fractions.Fraction(1, CALL_RATE)
    encoder.options = {"application": "voip"}
    packets = []
    for start in range(0, len(pcm), OPUS_FRAME):
        frame = av.AudioFrame.from_ndarray(pcm[start:start + OPUS_FRAME].reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate = CALL_RATE
        frame.pts = start
        frame.time_base = fractions.Fraction(1, CALL_RATE)
        packets += encoder.encode(frame)
    packets += encoder.encode(None)
    decoder = OpusDecoder()
    frames: list[av.AudioFrame] = []
    lost = np.random.default_rng(seed).random(len(packets)) < loss
    for k, packet in enumerate(packets):
        if lost[k] and k:
            continue
        # RTP timestamps as a sender stamps them: one 20 ms frame per packet from 0 (libopus'
        # own pts start negative, by its pre-skip).
        jitter = JitterFrame(data=bytes(packet), timestamp=k * OPUS_FRAME)
        frames += decoder.decode(jitter)
    return frames


def ingest_detector(backend: VadBackend, declared: bool,
                    conceal_s: float = CONCEAL_S) -> Callable[[list[av.AudioFrame]], str]:
    """The ingest's audio mode on decoded frames (services/ingest/peer.py ``_read_audio``);
    ``conceal_s`` 0: every gap as zeros, as before lost packets were concealed."""

    def detect(frames: list[av.AudioFrame]) -> str:
        framer = AudioVadFramer(0, vad=backend.create(narrowband=declared), conceal_s=conceal_s)
        batches = []
        for frame in frames:
            pcm = frame.to_ndarray().reshape(-1)
            batches += framer.frame(pcm, len(frame.layout.channels), frame.sample_rate,
                                    frame.pts)
        batches += framer.finish()
        return b"".join(b.data for b in sorted(batches, key=lambda b: b.seq)).decode("ascii")

    return detect


def decoded(frames: list[av.AudioFrame], rate: int) -> np.ndarray:
    """The decoded frames as mono float audio at ``rate`` (soxr): what a rival is given. Each
    frame is placed by its pts and a gap filled as the ingest fills it for its VAD
    (services/ingest/audio.py ``gap_fill``), so a rival hears what the ingest's VAD hears."""
    limit = round(CONCEAL_S * CALL_RATE)
    parts: list[np.ndarray] = []
    placed = frames[0].pts
    recent = np.zeros(0, dtype=np.float32)
    for frame in frames:
        stereo = frame.to_ndarray().reshape(-1).astype(np.float32)
        mono = stereo.reshape(-1, len(frame.layout.channels)).mean(axis=1) / 32768.0
        if frame.pts > placed:
            fill, _ = gap_fill(recent, frame.pts - placed, limit)
            parts.append(fill)
            recent = np.concatenate((recent, fill))[-limit:]
        parts.append(mono)
        recent = np.concatenate((recent, mono))[-limit:]
        placed = frame.pts + len(mono)
    return np.asarray(soxr.resample(np.concatenate(parts), CALL_RATE, rate, quality="HQ"),
                      dtype=np.float32)


Scored = dict[tuple[str, str], float]  # (detector, condition) -> frame F1 after §2


def pooled(recordings: list[real_speech.Recording],
           detect_all: Callable[[np.ndarray], dict[str, str]]) -> tuple[list[str], Scored]:
    """The conditions in order, and frame F1 after §2 per (detector, condition) of what
    ``detect_all`` decides on each noisy copy of each recording (16 kHz), frames pooled."""
    predicted: dict[tuple[str, str], list[np.ndarray]] = {}
    truth: dict[tuple[str, str], list[np.ndarray]] = {}
    order: list[str] = []
    for recording in recordings:
        for condition, audio in real_speech.noisy(recording).items():
            order += [] if condition in order else [condition]
            for name, voiced in detect_all(audio).items():
                decided = after_section2(voiced)
                n = min(len(decided), len(recording.labels))
                predicted.setdefault((name, condition), []).append(decided[:n])
                truth.setdefault((name, condition), []).append(recording.labels[:n])
    return order, {key: scores(np.concatenate(predicted[key]),
                               np.concatenate(truth[key]))["f1"] for key in predicted}


def verdict_table(heading: str, order: list[str], f1: Scored, ours: str,
                  beside: str) -> tuple[int, float]:
    """Print ``f1`` as a table under ``heading``, then per condition ``ours`` against the best
    of silero-vad and webrtcvad, with ``beside``'s F1; return the conditions ``ours`` is under
    that rival and its shortfall there in all."""
    names = list(dict.fromkeys(name for name, _ in f1))
    print(f"\n## {heading}: frame F1 after §2")
    print(f"{'condition':<10}" + "".join(f"{n:>14}" for n in names))
    for c in order:
        print(f"{c:<10}" + "".join(f"{f1[(n, c)]:>14.3f}" for n in names))
    rivals = [n for n in names if n.startswith(("webrtcvad", "silero-vad"))]
    under, shortfall = 0, 0.0
    print(f"{ours} vs the best of silero-vad and webrtcvad on the decoded audio:")
    for c in order:
        best = max(rivals, key=lambda n: f1[(n, c)])
        mine, theirs = f1[(ours, c)], f1[(best, c)]
        if mine < theirs:
            under, shortfall = under + 1, shortfall + theirs - mine
        print(f"  {c:<10} {ours} {mine:.3f} vs {best} {theirs:.3f}: "
              f"{'at least' if mine >= theirs else 'UNDER'} ({mine - theirs:+.3f}); "
              f"{beside} {f1[(beside, c)]:.3f}")
    return under, shortfall


def table(title: str, recordings: list[real_speech.Recording], bitrate: int,
          ingest: dict[str, Callable[[list[av.AudioFrame]], str]],
          line: dict[str, Callable[[np.ndarray], str]]) -> tuple[int, float]:
    """Print one set's table; return the conditions ``declared`` is under the best rival and
    its shortfall there in all."""

    def detect_all(audio: np.ndarray) -> dict[str, str]:
        narrow = to_narrowband(audio)
        frames = through_opus(narrow, NARROWBAND_MAX_RATE, bitrate)
        line_audio = decoded(frames, NARROWBAND_MAX_RATE)
        return {**{name: detect(frames) for name, detect in ingest.items()},
                "8 kHz file": line["8 kHz file"](narrow),
                **{name: detect(line_audio) for name, detect in line.items()
                   if name != "8 kHz file"}}

    order, f1 = pooled(recordings, detect_all)
    return verdict_table(f"{title} ({len(recordings)} pooled), through an 8 kHz line and Opus "
                         f"at {bitrate // 1000} kbps", order, f1, "declared", "not declared")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS),
                        help="comma-separated sets to score (default: all: %(default)s)")
    parser.add_argument("--bitrate", type=int, default=32_000,
                        help="the call's Opus bit rate, bits/s (default: %(default)s)")
    args = parser.parse_args()
    print(f"# bench/vad_dialin.py, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    backend = VadBackend("silero")
    ingest = {"declared": ingest_detector(backend, True),
              "not declared": ingest_detector(backend, False)}
    line: dict[str, Callable[[np.ndarray], str]] = {
        "8 kHz file": backend_detector(True), "silero-vad": silero_upstream_detector(),
        **{f"webrtcvad-{mode}": webrtc_detector(mode) for mode in range(4)}}
    summary = []
    for name in args.sets.split(","):
        if name not in SETS:
            parser.error(f"--sets: unknown set {name!r} (one of {', '.join(SETS)})")
        recordings = SETS[name]()
        if not recordings:
            print(f"\n## {TITLES[name]}: absent (bench/real_speech.py says where to put it)")
            continue
        summary.append((name, *table(TITLES[name], recordings, args.bitrate, ingest, line)))
    print("\n## declared: conditions under the best rival, of 10 (shortfall)")
    for name, under, shortfall in summary:
        print(f"  {name:<16} {under} ({shortfall:.3f})")


if __name__ == "__main__":
    main()
