"""Twenty concurrent WebRTC participants on one ingest process: ten sessions of two real aiortc
peers each, every participant streaming a short committed clip in real time; half the sessions
in levels mode, half in audio mode (decode + VAD). The ingest runs in the test process (its
CPU time is printed); the 20 client peers run together in one child process, so their Opus
encoding and SRTP do not share the ingest's event loop, as with real browsers.

Each participant's published activity must be contiguous on its grid, cover its clip, and
agree with the clip's labels per 20 ms frame after METRICS.md §2 (as in
test_ingest_webrtc.py, with a lower bar: 40 peers on a shared 2-core machine jitter more);
each session must read session.start, participant.join, two participant.leave, session.end.
On a loaded machine the 20 Python senders run well behind real time (a clip of 8 s takes up to
twice as long to send): levels mode then relies on publishing by the media clock
(services/ingest/frames.py), or every frame trailing by more than the hold would be dropped.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import aiohttp
import numpy as np
from aiortc import RTCPeerConnection
from av import AudioFrame
from ingestkit import INGEST_C1, auth, ingest_client, values
from test_ingest_webrtc import RATE, ClipTrack, agreement, clip, join, run, voiced_of

from services.ingest import IngestConfig
from services.ingest.app import _warm_vad

SESSIONS = 10
CLIPS = ("f_us_fast_loud", "f_scot_mid")  # therapist, client
THRESHOLD = {"levels": 0.85, "audio": 0.80}
LEAD_S = 1.0
LEAD_FRAMES = int(LEAD_S * 50)  # 20 ms frames
CONFIG = IngestConfig(network_interval_s=2.0, tick_s=0.25)


class GatedClipTrack(ClipTrack):
    """A microphone that starts only once its connection is up (``opened``), like the join
    page's: aiortc's sender reads frames from ``setRemoteDescription`` on and drops them until
    DTLS is connected, which would cut off an unknown part of the start. It then plays
    ``LEAD_S`` of silence and the clip, which therefore starts at frame ``LEAD_FRAMES`` of the
    participant's grid."""

    def __init__(self, audio: np.ndarray) -> None:
        super().__init__(np.concatenate((np.zeros(int(LEAD_S * RATE), np.float32), audio)))
        self.opened = asyncio.Event()

    async def recv(self) -> AudioFrame:
        await self.opened.wait()
        return await super().recv()


async def open_when_connected(pc: RTCPeerConnection, track: GatedClipTrack) -> None:
    while pc.connectionState != "connected":
        assert pc.connectionState not in ("failed", "closed"), pc.connectionState
        await asyncio.sleep(0.05)
    track.opened.set()


def mode_of(session: int) -> str:
    return "levels" if session % 2 == 0 else "audio"


async def _play(url: str) -> dict[str, float]:
    clips = {name: clip(name)[0] for name in CLIPS}
    started = time.monotonic()
    async with aiohttp.ClientSession(base_url=url) as client:
        offers, tracks = [], []
        for s in range(SESSIONS):
            for role, name in zip(("therapist", "client"), CLIPS, strict=True):
                track = GatedClipTrack(clips[name])
                tracks.append(track)
                mode = mode_of(s)
                offers.append(join(client, f"s{s}", role, role, track,
                                   None if mode == "levels" else mode))
        peers = []
        for pc, answer in await asyncio.gather(*offers):
            assert answer["status"] == 200, answer
            peers.append(pc)
        await asyncio.wait_for(asyncio.gather(*(open_when_connected(pc, track) for pc, track
                                                in zip(peers, tracks, strict=True))), 60)
        connected = time.monotonic() - started
        # Every clip sent, plus a second of silence for the last batches.
        deadline = time.monotonic() + 90
        while any(t.sent < len(t.pcm) + RATE for t in tracks):
            assert time.monotonic() < deadline, [t.sent for t in tracks]
            await asyncio.sleep(0.2)
        streamed = time.monotonic() - started
        ends = [client.post(f"/v1/sessions/s{s}/end", headers=auth(INGEST_C1))
                for s in range(SESSIONS)]
        statuses = [r.status for r in await asyncio.gather(*ends)]
        assert statuses == [204] * SESSIONS, statuses
        await asyncio.gather(*(pc.close() for pc in peers))
    return {"connected": connected, "streamed": streamed}


def play(url: str) -> dict[str, float]:
    """The 20 client peers, run in a process of their own (see the module docstring)."""
    return asyncio.run(_play(url))


def test_twenty_participants_stream_concurrently_into_one_ingest() -> None:
    clips = {name: clip(name) for name in CLIPS}
    longest = max(len(audio) for audio, _ in clips.values()) / RATE
    # What the ingest's start-up does in a thread (ingest_client skips it): librosa compiles
    # numba code at its first call, seconds in which the event loop would stop every peer.
    _warm_vad()

    async def scenario() -> tuple[list[dict[str, Any]], dict[str, float], float]:
        async with ingest_client(CONFIG) as (client, sink):
            cpu = time.process_time()
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(1, mp_context=context) as pool:
                timing = await asyncio.get_running_loop().run_in_executor(
                    pool, play, str(client.make_url("/")))
            return values(sink.events), timing, time.process_time() - cpu

    events, timing, cpu = run(scenario())
    print(f"20 offers answered and connected in {timing['connected']:.1f} s; every clip sent "
          f"after {timing['streamed']:.1f} s (clips up to {longest:.1f} s); ingest process "
          f"CPU {cpu:.1f} s")
    scores: list[float] = []
    low = []
    for s in range(SESSIONS):
        mine = [e for e in events if e["session_id"] == f"s{s}"]
        lifecycle = [e["type"] for e in mine if e["type"] not in ("activity", "network")]
        assert lifecycle == ["session.start", "participant.join", "participant.leave",
                             "participant.leave", "session.end"], (s, lifecycle)
        for role, name in zip(("therapist", "client"), CLIPS, strict=True):
            score = agreement(voiced_of(mine, role)[LEAD_FRAMES:], clips[name][1])
            scores.append(score)
            print(f"s{s} {mode_of(s)} {role}: agreement {score:.3f}")
            if score < THRESHOLD[mode_of(s)]:
                low.append((s, role, round(score, 3)))
    print(f"agreement: min {min(scores):.3f}, mean {np.mean(scores):.3f}")
    assert not low, low
