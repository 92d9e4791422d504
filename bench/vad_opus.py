"""Participants in a call: the WebRTC ingest's VAD on real speech that reached it through Opus
(issue 17; docs/vad.md, "Through a call's codec").

Every other real-speech figure here scores the VAD on the recordings' own PCM. A participant of
a call reaches the ingest otherwise: the browser encodes their microphone as Opus (48 kHz,
20 ms frames, about 32 kbps for speech, less when the network is congested) and the ingest
decodes it with aiortc's decoder, resamples it to 16 kHz and feeds its framer
(services/ingest/audio.py ``AudioVadFramer``) in 1 s batches. This bench sends every real set of
bench/vad_narrowband.py (:data:`SETS`, and the held-out recordings), clean and with white, pink
and babble noise at 20 / 10 / 5 dB (noise sample 0, mixed at 16 kHz as bench/real_speech.py
mixes it), up to 48 kHz (soxr), through libopus (``voip``, at each ``--bitrates``) and
aiortc's decoder, and scores, per set pooled, frame F1 after METRICS.md §2 of:

- ``ingest``: the ingest's framer fed the decoded frames as services/ingest/peer.py feeds them,
  with the default backend (the participant not declared to have dialled in);
- ``16 kHz file``: the default on the same audio before the codec (bench/vad.py's
  ``default``): what the codec costs;
- the rivals, silero-vad and webrtcvad (modes 0-3), on the decoded audio brought to 16 kHz
  (soxr): each is given what the codec left, as the ingest is.

After each table, whether ``ingest`` is at least the best rival in each condition (issue 17's
bar), and at the end, per bit rate and set, the conditions under it and the shortfall there.
Nothing here was fitted or ranked on; the browser's own processing (noise suppression, gain)
is off on the ingest's join page (services/ingest/join.py) and left out here too.

``--loss P`` loses that share of packets, each independently (seeded per clip). aiortc conceals
nothing: the ingest fills each gap (services/ingest/audio.py ``gap_fill``: up to 60 ms by the
audio before it, repeated; longer, zeros), and the rivals are given the same filled audio. A
column ``gaps as zeros`` adds the ingest as it was before it concealed anything.

Usage: ``.venv/bin/python bench/vad_opus.py [--sets tuning,...] [--bitrates 32000,16000]
[--loss 0.05]`` (about eight minutes per bit rate on one core with TEN VAD's test set, on the
AMD EPYC VM of docs/vad.md; its halves are skipped with a note when absent).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import real_speech  # noqa: E402
from bench import vad as bench_vad  # noqa: E402
from bench.vad_dialin import (  # noqa: E402
    decoded,
    ingest_detector,
    pooled,
    through_opus,
    verdict_table,
)
from bench.vad_narrowband import SETS as NARROWBAND_SETS  # noqa: E402
from bench.vad_narrowband import TITLES as NARROWBAND_TITLES  # noqa: E402
from services.ingest.vad_backend import VadBackend  # noqa: E402

SR = real_speech.SR
SETS: dict[str, Callable[[], list[real_speech.Recording]]] = {
    **NARROWBAND_SETS, "held-out": real_speech.held_out}
TITLES = {**NARROWBAND_TITLES, "held-out": "held-out counting recordings"}
Frames = list[av.AudioFrame]


def table(title: str, recordings: list[real_speech.Recording], bitrate: int, loss: float,
          ingest: dict[str, Callable[[Frames], str]],
          pcm: dict[str, bench_vad.Detector]) -> tuple[int, float]:
    """Print one set's table and verdicts; return the conditions ``ingest`` is under the best
    rival and its shortfall there in all."""

    def detect_all(audio: np.ndarray) -> dict[str, str]:
        # Which packets are lost depends on the clip alone, the same for every detector.
        frames = through_opus(audio, SR, bitrate, loss, seed=len(audio))
        after_codec = decoded(frames, SR)
        return {**{name: detect(frames) for name, detect in ingest.items()},
                "16 kHz file": pcm["default"](audio),
                **{name: detect(after_codec) for name, detect in pcm.items()
                   if name != "default"}}

    order, f1 = pooled(recordings, detect_all)
    lost = f", {loss:.0%} of packets lost" if loss else ""
    return verdict_table(f"{title} ({len(recordings)} pooled), through Opus at "
                         f"{bitrate // 1000} kbps{lost}", order, f1, "ingest", "16 kHz file")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS),
                        help="comma-separated sets to score (default: all: %(default)s)")
    parser.add_argument("--bitrates", default="32000",
                        help="comma-separated Opus bit rates, bits/s (default: %(default)s; "
                             "browsers send speech at about 32 kbps, less when congested)")
    parser.add_argument("--loss", type=float, default=0.0,
                        help="the share of packets lost, each independently (default: "
                             "%(default)s); adds the ingest with every gap as zeros, as it "
                             "was before it concealed lost packets")
    args = parser.parse_args()
    if not 0 <= args.loss < 1:
        parser.error("--loss: a share of packets, 0 to under 1")
    names = args.sets.split(",")
    for name in names:
        if name not in SETS:
            parser.error(f"--sets: unknown set {name!r} (one of {', '.join(SETS)})")
    try:
        bitrates = [int(b) for b in args.bitrates.split(",")]
    except ValueError:
        parser.error(f"--bitrates: not whole numbers: {args.bitrates!r}")
    if not all(6_000 <= b <= 510_000 for b in bitrates):
        parser.error("--bitrates: Opus takes 6000 to 510000 bits/s")
    print(f"# bench/vad_opus.py, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    backend = VadBackend("silero")
    ingest = {"ingest": ingest_detector(backend, False)}
    if args.loss:
        ingest["gaps as zeros"] = ingest_detector(backend, False, conceal_s=0.0)
    found, missing = bench_vad.detectors()
    for note in missing:
        print(f"(not run: {note})")
    pcm = {name: found[name] for name in found
           if name == "default" or name.startswith(("silero-vad", "webrtcvad"))}
    summary = []
    for bitrate in bitrates:
        for name in names:
            recordings = SETS[name]()
            if not recordings:
                print(f"\n## {TITLES[name]}: absent (bench/real_speech.py says where to put it)")
                continue
            summary.append((bitrate, name, *table(TITLES[name], recordings, bitrate,
                                                  args.loss, ingest, pcm)))
    print("\n## ingest: conditions under the best rival, of 10 (shortfall)")
    for bitrate, name, under, shortfall in summary:
        print(f"  {bitrate // 1000:>3} kbps  {name:<16} {under} ({shortfall:.3f})")


if __name__ == "__main__":
    main()
