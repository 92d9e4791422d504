"""Participants in a real browser: the WebRTC ingest's VAD on real speech that a headless
Chromium captured, processed, encoded and sent (issue 17; docs/vad.md, "Through a real
browser").

bench/vad_opus.py sends real speech through libopus as PyAV builds it, at a fixed bit rate,
with nothing before the encoder. A participant's browser does more: its capture path runs
WebRTC's audio processing when the page asks for it (echo cancellation, noise suppression,
automatic gain; the join page's ``processing=on``, and what ``getUserMedia({audio: true})``
gives), and its own Opus encoder picks its bit rate and settings. This bench plays each real
set as the microphone of Debian's real Chromium (``--use-file-for-fake-audio-capture``; one
browser per set, condition and ``processing``, up to ``--parallel`` at once, each in real time)
into an aiortc peer in this process, as the ingest's join page does (offer first, then the
microphone), and keeps the decoded frames in memory. Each recording is then found in its
stream (cross-correlation; the browser's processing delays it by about 10 ms) and scored on its
own frames, per set pooled, frame F1 after METRICS.md §2:

- ``ingest``: the ingest's framer (services/ingest/audio.py ``AudioVadFramer``, the default
  backend) fed the recording's stretch of the decoded stream, gaps filled as the framer fills
  them;
- ``libopus``: the same framer on bench/vad_opus.py's path (PyAV's libopus at 32 kbps, no
  processing): how well that bench stands in for a browser;
- ``16 kHz file``: the default on the recording's own PCM;
- the rivals, silero-vad and webrtcvad (modes 0-3), on the decoded stretch at 16 kHz (soxr).

After each table, whether ``ingest`` is at least the best rival in each condition (issue 17's
bar), and at the end, per ``processing`` and set, the conditions under it and the shortfall.
Nothing here is fitted or ranked on. The recordings' audio goes to a temporary WAV (Chromium's
fake microphone reads a file), deleted at the end; they are the public recordings of
bench/real_speech.py, never a participant's.

Usage: ``.venv/bin/python bench/vad_browser.py [--sets tuning,...] [--conditions clean,...]
[--processing off,on] [--parallel 6]``. The defaults play 108 minutes of audio in 56 streams:
about 23 minutes on the AMD EPYC VM of docs/vad.md (2 cores), 19 of them playing six browsers
at once (no packet lost), then scoring. Needs Chromium (``apt-get install chromium``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from aiohttp import web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from scipy.signal import fftconvolve

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import real_speech  # noqa: E402
from bench import vad as bench_vad  # noqa: E402
from bench.vad_dialin import CALL_RATE, ingest_detector, through_opus, verdict_table  # noqa: E402
from bench.vad_opus import SETS, TITLES  # noqa: E402
from services.ingest.audio import CONCEAL_S, AudioVadFramer, gap_fill  # noqa: E402
from services.ingest.vad_backend import VadBackend  # noqa: E402

SR = real_speech.SR
LEAD_S = 1.0  # digital silence before the first recording: the start of capture may be lost
GAP_S = 0.5  # between recordings
START_S = 60.0  # a browser given longer than its WAV plus this to start is stopped
TAIL_S = 3.0  # after the last: at its file's end Chromium's fake device repeats the last chunk
CONDITIONS = "clean,white10,pink10,babble10"
CHROMIUM = "/usr/lib/chromium/chromium"  # the real binary: /usr/bin/chromium's wrapper adds flags
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--use-fake-ui-for-media-stream",
                  "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection")

# The join page's order (services/ingest/join.py): the offer before the microphone, whose
# capture starts at getUserMedia; processing as the join page's ``processing`` parameter.
PAGE = """<!doctype html><html><body data-state="starting"><script>
"use strict";
(async () => {
  const q = new URLSearchParams(location.search);
  const processing = q.get("processing") === "on";
  const pc = new RTCPeerConnection({iceServers: []});
  const transceiver = pc.addTransceiver("audio", {direction: "sendonly"});
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") resolve();
    });
  });
  const reply = await fetch("/offer?name=" + encodeURIComponent(q.get("name")), {
    method: "POST", body: JSON.stringify({sdp: pc.localDescription.sdp, type: "offer"})});
  await pc.setRemoteDescription(await reply.json());
  const stream = await navigator.mediaDevices.getUserMedia({audio: {echoCancellation: processing,
    noiseSuppression: processing, autoGainControl: processing}});
  await transceiver.sender.replaceTrack(stream.getAudioTracks()[0]);
  document.body.dataset.state = "streaming";
})().catch((error) => { document.body.dataset.state = "error: " + error; });
</script></body></html>"""


@dataclass
class Stream:
    """One browser's microphone: a set's recordings in one condition, back to back."""

    name: str
    processing: str
    clips: list[np.ndarray]  # 16 kHz
    starts: list[int] = field(default_factory=list)  # each clip's first sample in the WAV, 48 kHz
    frames: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (pts, mono s16)

    def wav(self, path: Path) -> float:
        """Write the microphone's WAV (48 kHz, 16-bit); return its length in seconds."""
        parts = [np.zeros(round(LEAD_S * CALL_RATE), dtype=np.float32)]
        at = len(parts[0])
        for clip in self.clips:
            up = np.asarray(soxr.resample(clip, SR, CALL_RATE, quality="HQ"), dtype=np.float32)
            self.starts.append(at)
            parts += [up, np.zeros(round(GAP_S * CALL_RATE), dtype=np.float32)]
            at += len(up) + len(parts[-1])
        parts.append(np.zeros(round(TAIL_S * CALL_RATE), dtype=np.float32))
        audio = np.concatenate(parts)
        sf.write(path, np.clip(audio, -1, 32767 / 32768), CALL_RATE, subtype="PCM_16")
        return len(audio) / CALL_RATE

    def complete(self) -> bool:
        """Whether every recording arrived (with its lead, if the capture started late)."""
        return bool(self.frames) and self.frames[-1][0] >= self.starts[-1] + len(
            self.clips[-1]) * (CALL_RATE // SR)

    def received(self) -> np.ndarray:
        """The decoded stream as float mono at 48 kHz, placed by pts, each gap filled as the
        ingest's framer fills it (services/ingest/audio.py ``gap_fill``)."""
        limit = round(CONCEAL_S * CALL_RATE)
        parts: list[np.ndarray] = []
        recent = np.zeros(0, dtype=np.float32)
        placed = self.frames[0][0]
        for pts, pcm in self.frames:
            mono = pcm.astype(np.float32) / 32768
            if pts > placed:
                fill, _ = gap_fill(recent, pts - placed, limit)
                parts.append(fill)
                recent = np.concatenate((recent, fill))[-limit:]
            parts.append(mono)
            recent = np.concatenate((recent, mono))[-limit:]
            placed = pts + len(mono)
        return np.concatenate(parts)


class Receiver:
    """The page and an aiortc answerer that keeps each stream's decoded frames."""

    def __init__(self) -> None:
        self.streams: dict[str, Stream] = {}
        self.peers: list[RTCPeerConnection] = []
        self.readers: set[asyncio.Task[None]] = set()  # held: the loop keeps weak references

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", lambda _: web.Response(text=PAGE, content_type="text/html"))
        app.router.add_post("/offer", self.offer)
        return app

    async def offer(self, request: web.Request) -> web.Response:
        stream = self.streams[request.query["name"]]
        offer = json.loads(await request.text())
        peer = RTCPeerConnection()
        self.peers.append(peer)

        @peer.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            async def read() -> None:
                while True:
                    try:
                        frame = await track.recv()
                    except MediaStreamError:
                        return
                    pcm = frame.to_ndarray().reshape(-1, len(frame.layout.channels))
                    stream.frames.append((frame.pts, pcm.mean(axis=1).astype(np.int16)))

            task = asyncio.ensure_future(read())
            self.readers.add(task)
            task.add_done_callback(self.readers.discard)

        await peer.setRemoteDescription(RTCSessionDescription(**offer))
        await peer.setLocalDescription(await peer.createAnswer())
        return web.json_response({"sdp": peer.localDescription.sdp,
                                  "type": peer.localDescription.type})


async def play(streams: list[Stream], port: int, chromium: str, directory: Path,
               parallel: int) -> None:
    """Play every stream's WAV as a browser's microphone, ``parallel`` at once, in real time."""
    pending = list(streams)
    running: list[tuple[Stream, subprocess.Popen[bytes], float, float]] = []
    started = time.monotonic()
    retried: set[str] = set()

    def stop(process: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the browser and all its children
        process.wait()

    try:
        while pending or running:
            while pending and len(running) < parallel:
                stream = pending.pop(0)
                wav = directory / f"{stream.name}.wav"
                seconds = stream.wav(wav)
                url = (f"http://127.0.0.1:{port}/?name={stream.name}"
                       f"&processing={stream.processing}")
                process = subprocess.Popen(
                    [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={directory / stream.name}",
                     f"--use-file-for-fake-audio-capture={wav}%noloop", url],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    stdin=subprocess.DEVNULL, start_new_session=True)
                running.append((stream, process, seconds, time.monotonic() + seconds + START_S))
                print(f"  [{time.monotonic() - started:6.0f} s] playing {stream.name} "
                      f"({seconds:.0f} s), {len(pending)} to go", flush=True)
            await asyncio.sleep(1)
            for entry in list(running):
                stream, process, seconds, deadline = entry
                heard = stream.frames[-1][0] / CALL_RATE if stream.frames else 0.0
                # Played through; or never started or stalled: played again, once.
                if heard >= seconds or time.monotonic() > deadline:
                    stop(process)
                    running.remove(entry)
                    shutil.rmtree(directory / stream.name, ignore_errors=True)
                    (directory / f"{stream.name}.wav").unlink()
                    if heard < seconds and stream.name not in retried:
                        print(f"  {stream.name}: {heard:.0f} of {seconds:.0f} s arrived; "
                              "played again", flush=True)
                        retried.add(stream.name)
                        stream.frames.clear()
                        stream.starts.clear()
                        pending.append(stream)
    finally:
        for _, process, _, _ in running:
            stop(process)


def clip_in(received: np.ndarray, lo: int, hi: int, clip: np.ndarray) -> tuple[int, float]:
    """Where ``clip`` (16 kHz) starts in ``received`` (48 kHz), looked for from ``lo`` to
    ``hi`` by cross-correlation at 8 kHz; and the normalised peak there (1: the same audio)."""
    step = CALL_RATE // 8000
    # Compared as first differences: the codec and the browser cut the lowest frequencies,
    # which hold most of pink noise's power and would otherwise swamp the peak.
    source = np.diff(np.asarray(soxr.resample(clip, SR, 8000), dtype=np.float64))
    lo = max(0, lo)
    window = received[lo:hi + len(clip) * (CALL_RATE // SR)]
    heard = np.diff(np.asarray(soxr.resample(window, CALL_RATE, 8000), dtype=np.float64))
    if len(heard) < len(source):
        return lo, 0.0
    correlation = fftconvolve(heard, source[::-1], mode="valid")
    best = int(np.argmax(np.abs(correlation)))
    energy = np.sum(source ** 2) * np.sum(heard[best:best + len(source)] ** 2)
    return lo + best * step, float(abs(correlation[best]) / (np.sqrt(energy) + 1e-12))


def framer_detector(backend: VadBackend) -> Callable[[np.ndarray], str]:
    """The ingest's framer (default backend) on a stretch of decoded audio at 48 kHz, in 20 ms
    frames as aiortc hands them on."""

    def detect(audio: np.ndarray) -> str:
        framer = AudioVadFramer(0, vad=backend.create(narrowband=False))
        pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
        batches = []
        step = CALL_RATE // 50
        for start in range(0, len(pcm), step):
            batches += framer.frame(pcm[start:start + step], 1, CALL_RATE, start)
        batches += framer.finish()
        return b"".join(b.data for b in sorted(batches, key=lambda b: b.seq)).decode("ascii")

    return detect


def score(stream: Stream, recordings: list[real_speech.Recording],
          detect_all: Callable[[np.ndarray, np.ndarray], dict[str, str]],
          decided: dict[str, list[np.ndarray]], truth: dict[str, list[np.ndarray]]) -> float:
    """Add each recording's decisions in ``stream`` to ``decided`` and its labels to
    ``truth``; return the lowest correlation peak of its recordings."""
    received = stream.received()
    offset = None
    lowest = 1.0
    for recording, clip, start in zip(recordings, stream.clips, stream.starts, strict=True):
        if offset is None:
            # The first anywhere in its lead and a second after (capture may start late);
            # the rest where its offset puts them (the processing delay does not change).
            found, peak = clip_in(received, 0, start + CALL_RATE, clip)
            offset = found - start
        else:
            found, peak = clip_in(received, start + offset - CALL_RATE // 50,
                                  start + offset + CALL_RATE // 50, clip)
        lowest = min(lowest, peak)
        heard = received[found:found + len(clip) * (CALL_RATE // SR)]
        for name, voiced in detect_all(clip, heard).items():
            frames = bench_vad.after_section2(voiced)
            n = min(len(frames), len(recording.labels))
            decided.setdefault(name, []).append(frames[:n])
            truth.setdefault(name, []).append(recording.labels[:n])
    return lowest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS),
                        help="comma-separated sets to play (default: all: %(default)s)")
    parser.add_argument("--conditions", default=CONDITIONS,
                        help="comma-separated conditions (default: %(default)s; any of "
                             "clean, white|pink|babble + 20|10|5)")
    parser.add_argument("--processing", default="off,on",
                        help="the browser's audio processing, comma-separated off/on "
                             "(default: %(default)s)")
    parser.add_argument("--parallel", type=int, default=6,
                        help="browsers playing at once (default: %(default)s)")
    args = parser.parse_args()
    names = args.sets.split(",")
    for name in names:
        if name not in SETS:
            parser.error(f"--sets: unknown set {name!r} (one of {', '.join(SETS)})")
    conditions = args.conditions.split(",")
    known = ["clean"] + [f"{n}{d}" for n in ("white", "pink", "babble") for d in (20, 10, 5)]
    for condition in conditions:
        if condition not in known:
            parser.error(f"--conditions: unknown condition {condition!r}")
    processing = args.processing.split(",")
    if not set(processing) <= {"off", "on"}:
        parser.error("--processing: off, on or both")
    if args.parallel < 1:
        parser.error("--parallel: at least 1")
    chromium = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if chromium is None:
        sys.exit("Chromium is missing: apt-get install chromium")
    version = subprocess.run([chromium, "--version"], capture_output=True, text=True).stdout
    print(f"# bench/vad_browser.py, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"{version.strip()}")
    sets = {name: SETS[name]() for name in names}
    for name in [n for n in names if not sets[n]]:
        print(f"\n## {TITLES[name]}: absent (bench/real_speech.py says where to put it)")
        names.remove(name)
    streams: dict[tuple[str, str, str], Stream] = {}
    for name in names:
        mixed = [real_speech.noisy(recording) for recording in sets[name]]
        for condition in conditions:
            for mode in processing:
                streams[(mode, name, condition)] = Stream(
                    f"{name}-{condition}-{mode}", mode, [m[condition] for m in mixed])
    minutes = sum(len(c) for s in streams.values() for c in s.clips) / SR / 60
    print(f"playing {len(streams)} streams, {minutes:.0f} minutes of audio, "
          f"{args.parallel} at once", flush=True)
    asyncio.run(capture(list(streams.values()), args.parallel, chromium))

    backend = VadBackend("silero")
    found, missing = bench_vad.detectors()
    for note in missing:
        print(f"(not run: {note})")
    rivals = {n: found[n] for n in found if n.startswith(("silero-vad", "webrtcvad"))}
    ingest, libopus = framer_detector(backend), ingest_detector(backend, False)

    def detect_all(clip: np.ndarray, heard: np.ndarray) -> dict[str, str]:
        at_16k = np.asarray(soxr.resample(heard, CALL_RATE, SR, quality="HQ"), dtype=np.float32)
        return {"ingest": ingest(heard), "libopus": libopus(through_opus(clip, SR, 32_000)),
                "16 kHz file": found["default"](clip),
                **{n: detect(at_16k) for n, detect in rivals.items()}}

    summary = []
    for mode in processing:
        for name in names:
            f1: dict[tuple[str, str], float] = {}
            notes = []
            played = []
            for condition in conditions:
                stream = streams[(mode, name, condition)]
                if not stream.complete():
                    notes.append(f"{condition} left out: the browser did not send it all, twice")
                    continue
                played.append(condition)
                decided: dict[str, list[np.ndarray]] = {}
                truth: dict[str, list[np.ndarray]] = {}
                peak = score(stream, sets[name], detect_all, decided, truth)
                pts = np.array([p for p, _ in stream.frames])
                lost = int(np.sum(np.diff(pts) - CALL_RATE // 50) // (CALL_RATE // 50))
                notes.append(f"{condition} lowest peak {peak:.2f}, {lost} packets lost")
                for detector, parts in decided.items():
                    f1[(detector, condition)] = bench_vad.scores(
                        np.concatenate(parts), np.concatenate(truth[detector]))["f1"]
            print(f"\n(found by cross-correlation: {'; '.join(notes)})")
            if not played:
                continue
            under, shortfall = verdict_table(
                f"{TITLES[name]} ({len(sets[name])} pooled), through Chromium, processing "
                f"{mode}", played, f1, "ingest", "16 kHz file")
            summary.append((mode, name, under, len(played), shortfall))
    print("\n## ingest: conditions under the best rival (shortfall in all)")
    for mode, name, under, of, shortfall in summary:
        print(f"  processing {mode:<3}  {name:<16} {under} of {of} ({shortfall:.3f})")


async def capture(streams: list[Stream], parallel: int, chromium: str) -> None:
    receiver = Receiver()
    receiver.streams = {stream.name: stream for stream in streams}
    runner = web.AppRunner(receiver.app())
    await runner.setup()
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    await web.SockSite(runner, listening).start()
    try:
        with tempfile.TemporaryDirectory(prefix="rapport-vad-browser-") as directory:
            await play(streams, port, chromium, Path(directory), parallel)
    finally:
        for peer in receiver.peers:
            await peer.close()
        await runner.cleanup()


if __name__ == "__main__":
    main()
