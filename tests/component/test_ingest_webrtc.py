"""WebRTC ingest with a real aiortc client peer in process: a committed clip is sent as a
microphone track (20 ms frames, real time, audio-level header extension negotiated), and the
activity the ingest publishes must match the clip's labels, in levels mode (RFC 6464 levels
read from RTP headers) and in audio mode (decode, resample, VAD). Also: session.start /
participant.join / leave / session.end from signaling, a dropped connection becoming
participant.leave, network events with RTT, and an ingest whose event loop is held up.

Agreement is per 20 ms frame after METRICS.md §2 (as in tests/unit/test_vad.py), over the
clip's frames. Measured here: levels 0.987, audio 0.949 on f_us_fast_loud; the thresholds sit
a few points under, for scheduling jitter of a loaded test machine.
"""

from __future__ import annotations

import asyncio
import fractions
import itertools
import json
import os
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import soxr
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError
from av import AudioFrame
from ingestkit import HIDE, INGEST_C1, INGEST_C2, auth, ingest_client, values

from models.config import EngineConfig
from models.events import level_translation
from models.speech import IpuBuilder
from services.ingest import IngestConfig
from services.ingest.network import MAX_LEAD_MS

AUDIO = Path(__file__).resolve().parents[1] / "data" / "audio"
RATE = 48_000
FRAME = 960  # 20 ms


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


def clip(name: str) -> tuple[np.ndarray, str]:
    audio, rate = sf.read(AUDIO / f"{name}.flac", dtype="float32")
    meta = json.loads((AUDIO / f"{name}.json").read_text())
    return soxr.resample(audio, rate, RATE).astype(np.float32), meta["voiced"]


class ClipTrack(AudioStreamTrack):
    """A microphone playing ``audio`` (48 kHz mono) in real time, then silence."""

    def __init__(self, audio: np.ndarray) -> None:
        super().__init__()
        pcm = np.clip(audio * 32767, -32768, 32767).astype(np.int16)
        pad = (-len(pcm)) % FRAME
        self.pcm = np.concatenate((pcm, np.zeros(pad, dtype=np.int16)))
        self.sent = 0
        self.started: float | None = None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.started is None:
            self.started = time.monotonic()
        wait = self.started + self.sent / RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        chunk = self.pcm[self.sent : self.sent + FRAME]
        if len(chunk) < FRAME:
            chunk = np.zeros(FRAME, dtype=np.int16)
        frame = AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.sent
        frame.time_base = fractions.Fraction(1, RATE)
        self.sent += FRAME
        return frame


async def join(client: Any, session: str, participant: str, role: str, track: ClipTrack,
               mode: str | None = None, token: str = INGEST_C1,
               **extra: Any) -> tuple[RTCPeerConnection, dict[str, Any]]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(track)
    await pc.setLocalDescription(await pc.createOffer())  # aiortc gathers here: no trickle
    body: dict[str, Any] = {"sdp": pc.localDescription.sdp, "type": "offer", "role": role,
                            **extra}
    if mode:
        body["mode"] = mode
    reply = await client.post(f"/v1/sessions/{session}/participants/{participant}/offer",
                              json=body, headers=auth(token))
    answer = await reply.json()
    if reply.status == 200:
        await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
    return pc, {"status": reply.status, **answer}


def section2(voiced: str) -> np.ndarray:
    engine = EngineConfig()
    builder = IpuBuilder(engine.min_pause_ms, engine.min_speech_ms)
    flags = np.frombuffer(voiced.encode(), dtype=np.uint8) == ord("1")
    edges = np.flatnonzero(np.diff(np.concatenate(([0], flags.astype(np.int8), [0]))))
    builder.add([(int(s) * 20, int(e) * 20) for s, e in edges.reshape(-1, 2)])
    out = np.zeros(len(flags), dtype=bool)

    def emit(start: int, end: int) -> None:
        out[start // 20 : end // 20] = True

    builder.finish(None, emit)
    return out


async def leave(client: Any, peers: list[tuple[str, RTCPeerConnection]],
                session: str = "s1") -> None:
    """Each participant leaves session ``session`` (DELETE, 204), then its peer closes."""
    for participant, pc in peers:
        reply = await client.delete(f"/v1/sessions/{session}/participants/{participant}",
                                    headers=auth(INGEST_C1))
        assert reply.status == 204
        await pc.close()


def voiced_of(events: list[dict[str, Any]], participant: str) -> str:
    batches = sorted((e for e in events if e["type"] == "activity"
                      and e["participant_id"] == HIDE(participant)),  # pseudonymized
                     key=lambda e: e["seq"])
    table = level_translation(EngineConfig().level_voiced_dbov)
    out = []
    for e in batches:
        out.append(e["voiced"] if "voiced" in e else bytes(e["levels"]).translate(table)
                   .decode())
    # batches are contiguous on the grid
    for a, b in itertools.pairwise(batches):
        assert b["start_ms"] == a["start_ms"] + 20 * len(a.get("voiced") or a["levels"])
    return "".join(out)


def agreement(voiced: str, labels: str) -> float:
    assert len(voiced) >= len(labels), (len(voiced), len(labels))
    predicted = section2(voiced[: len(labels)])
    truth = np.frombuffer(labels.encode(), dtype=np.uint8) == ord("1")
    return float(np.mean(predicted == truth))


CONFIG = IngestConfig(network_interval_s=1.0, tick_s=0.1)


@pytest.mark.parametrize(("mode", "threshold"), [("levels", 0.93), ("audio", 0.90)])
def test_a_participant_streams_a_clip_and_its_activity_matches_the_labels(
        mode: str, threshold: float) -> None:
    audio, labels = clip("f_us_fast_loud")

    async def scenario() -> list[dict[str, Any]]:
        async with ingest_client(CONFIG) as (client, sink):
            track = ClipTrack(audio)
            pc, answer = await join(client, "s1", "p1", "client", track,
                                    None if mode == "levels" else "audio")
            assert answer["status"] == 200, answer
            assert answer["mode"] == mode
            await asyncio.sleep(len(audio) / RATE + 1.5)
            reply = await client.delete("/v1/sessions/s1/participants/p1",
                                        headers=auth(INGEST_C1))
            assert reply.status == 204
            assert (await client.post("/v1/sessions/s1/end",
                                      headers=auth(INGEST_C1))).status == 204
            await pc.close()
            return values(sink.events)

    events = run(scenario())
    kinds = [e["type"] for e in events]
    assert kinds[0] == "session.start" and events[0]["clinic_id"] == "c1"
    assert events[0]["participants"] == [{"participant_id": HIDE("p1"), "role": "client"}]
    assert kinds[-2:] == ["participant.leave", "session.end"]
    assert "network" in kinds
    network = next(e for e in events if e["type"] == "network")
    assert 0 <= network["rtt_ms"] < 1000
    activity = [e for e in events if e["type"] == "activity"]
    assert activity[0]["start_ms"] >= events[0]["ts_ms"]
    assert ("levels" in activity[0]) == (mode == "levels")
    score = agreement(voiced_of(events, "p1"), labels)
    print(f"{mode}: agreement {score:.3f}")
    assert score >= threshold


def silero_or_skip() -> None:
    """The optional silero backend: skipped when not installed, failed with ``CI=true``
    (.ci/run installs it)."""
    from models.errors import ConfigError
    from models.vad_silero import load_session
    try:
        load_session()
    except ConfigError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"silero backend missing in CI: {error}")
        pytest.skip(f"silero backend not installed: {error}")


def dial_in_speech(seconds: int) -> tuple[np.ndarray, np.ndarray]:
    """Real speech as a dial-in participant's reaches the call, and its labels: the first
    ``seconds`` of ``mfa_cold_corpus`` (validation: a hoarse voice) in white noise at 5 dB,
    through an 8 kHz line, then up to 48 kHz (the gateway)."""
    from bench import real_speech
    from bench.vad_dialin import to_narrowband

    recording = next(r for r in real_speech.validation() if r.name == "mfa_cold_corpus")
    noisy = real_speech.noisy(recording)["white5"][: seconds * real_speech.SR]
    audio = soxr.resample(to_narrowband(noisy), 8_000, RATE).astype(np.float32)
    return audio, recording.labels[: seconds * 50]


def music_and_speech(music_gate: bool) -> tuple[float, float]:
    """In audio mode with the silero backend, one participant plays 12 s of a real string
    orchestra (tests/data/real/music), another a speech clip, both as Opus: the share of the
    orchestra's frames called speech after §2, and the clip's agreement with its labels."""
    music, rate = sf.read(AUDIO.parent / "real" / "music" / "brahms_hungarian_dance_5.flac",
                          dtype="float32")
    music = soxr.resample(music, rate, RATE).astype(np.float32)
    audio, labels = clip("f_us_fast_loud")
    config = IngestConfig(network_interval_s=1.0, tick_s=0.1, vad_backend="silero",
                          vad_music_gate=music_gate)

    async def scenario() -> list[dict[str, Any]]:
        async with ingest_client(config, warm=True) as (client, sink):
            peers = []
            for participant, role, track in (("p1", "client", ClipTrack(music)),
                                             ("p2", "therapist", ClipTrack(audio))):
                pc, answer = await join(client, "s1", participant, role, track, "audio")
                assert answer["status"] == 200, answer
                peers.append((participant, pc))
            await asyncio.sleep(12 + 1.5)
            await leave(client, peers)
            return values(sink.events)

    events = run(scenario())
    played = voiced_of(events, "p1")[: 12 * 50]
    assert len(played) == 12 * 50
    return float(section2(played).mean()), agreement(voiced_of(events, "p2"), labels)


def test_the_music_gate_reaches_audio_mode() -> None:
    """``vad_music_gate=True`` (``RAPPORT_VAD_MUSIC_GATE=on``): the silero backend's music gate
    (models/vad_music.py) runs on audio mode's participants. The orchestra's frames called
    speech: 0.000 with the gate, 0.252 without (``music_and_speech(False)``,
    checked); the speech clip's agreement with its labels holds."""
    silero_or_skip()
    called, score = music_and_speech(True)
    print(f"music gate: music called speech {called:.3f}, speech agreement {score:.3f}")
    assert called <= 0.02
    assert score >= 0.90


def test_audio_mode_with_the_silero_backend_and_a_dial_in_participant() -> None:
    """``vad_backend="silero"``: the same path, the VAD from onnxruntime, warmed at start-up
    (participants wait for it: nothing stalls the loop).

    Alongside, a participant whose offer says ``"telephone": true``: the ingest runs the
    backend's narrowband VAD on their audio (docs/vad.md, "Participants who dial in"). They send
    :func:`dial_in_speech` as Opus. Frame F1 after §2 against its labels, measured offline
    with bench/vad_dialin.py's code at aiortc's bit rate: 0.920 declared, 0.000 not (the 16 kHz
    network hears nothing of that voice through a line); here 0.926 (0.000 with the wiring
    removed, checked). A value that is not a boolean, or ``telephone`` in levels mode (no VAD
    runs there), is refused naming the field."""
    silero_or_skip()
    from bench.vad import scores

    audio, labels = clip("f_us_fast_loud")
    seconds = 10
    line, line_labels = dial_in_speech(seconds)
    config = IngestConfig(network_interval_s=1.0, tick_s=0.1, vad_backend="silero")

    async def scenario() -> list[dict[str, Any]]:
        async with ingest_client(config, warm=True) as (client, sink):
            for extra, reason in (({"mode": "audio", "telephone": "yes"}, "true or false"),
                                  ({"mode": "levels", "telephone": True}, "needs mode audio")):
                pc, refused = await join(client, "s1", "p0", "client", ClipTrack(audio),
                                         **extra)
                await pc.close()
                assert refused["status"] == 422 and refused["field"] == "telephone", refused
                assert reason in refused["error"]
            pc, answer = await join(client, "s1", "p1", "client", ClipTrack(audio), "audio")
            assert answer["status"] == 200, answer
            assert answer["mode"] == "audio" and answer["telephone"] is False
            pc2, answer2 = await join(client, "s1", "p2", "therapist", ClipTrack(line),
                                      "audio", telephone=True)
            assert answer2["status"] == 200, answer2
            assert answer2["mode"] == "audio" and answer2["telephone"] is True
            await asyncio.sleep(seconds + 1.5)
            await leave(client, [("p1", pc), ("p2", pc2)])
            return values(sink.events)

    events = run(scenario())
    activity = [e for e in events if e["type"] == "activity"]
    assert activity and all("voiced" in e for e in activity)
    score = agreement(voiced_of(events, "p1"), labels)
    print(f"audio (silero): agreement {score:.3f}")
    assert score >= 0.90
    voiced = voiced_of(events, "p2")
    assert len(voiced) >= len(line_labels)
    f1 = scores(section2(voiced[: len(line_labels)]), line_labels)["f1"]
    print(f"dial-in, declared: F1 after §2 {f1:.3f}")
    assert f1 >= 0.85


def test_join_leave_and_a_dropped_connection() -> None:
    silence = np.zeros(RATE * 10, dtype=np.float32)

    async def scenario() -> list[dict[str, Any]]:
        async with ingest_client(CONFIG) as (client, sink):
            pc1, a1 = await join(client, "s2", "t", "therapist", ClipTrack(silence))
            pc2, a2 = await join(client, "s2", "c", "client", ClipTrack(silence))
            assert a1["status"] == a2["status"] == 200
            # Issue 16 findings 1, 9: clinic c2's offer for "s2" starts c2's own "s2"; the
            # answer neither refuses nor names c1, and c1's session never sees "x".
            pc3, other = await join(client, "s2", "x", "client", ClipTrack(silence),
                                    token=INGEST_C2)
            assert other["status"] == 200 and "error" not in other
            assert [(r.key, e["type"]) for r, e in zip(sink.events, values(sink.events),
                                                       strict=True)
                    if r.key == b"c2 s2"][:1] == [(b"c2 s2", "session.start")]
            await pc3.close()
            await asyncio.sleep(1.5)
            await pc2.close()  # the client's connection drops
            deadline = time.monotonic() + 30
            while not any(e["type"] == "participant.leave" for e in values(
                    [r for r in sink.events if r.key == b"c1 s2"])):
                assert time.monotonic() < deadline, "no participant.leave after the drop"
                await asyncio.sleep(0.2)
            await client.post("/v1/sessions/s2/end", headers=auth(INGEST_C1))
            await pc1.close()
            reply = await client.post("/v1/sessions/s2/end", headers=auth(INGEST_C1))
            assert reply.status == 204  # no longer live: published as a plain end
            return values([r for r in sink.events if r.key == b"c1 s2"])

    events = run(scenario())
    lifecycle = [(e["type"], e.get("participant_id") or e.get("participants", [{}])[0]
                  .get("participant_id")) for e in events
                 if e["type"] not in ("activity", "network")]
    t, c = HIDE("t"), HIDE("c")  # pseudonymized on entry (issue 16 finding 5)
    assert lifecycle[:4] == [("session.start", t), ("participant.join", c),
                             ("participant.leave", c), ("participant.leave", t)]
    assert lifecycle[4][0] == "session.end"
    leave_c = next(i for i, e in enumerate(events) if e["type"] == "participant.leave")
    assert all(e["participant_id"] != c for e in events[leave_c + 1:]
               if e["type"] == "activity")


STALL_S = 4.0  # well over MAX_LEAD_MS: a reading stamped after it would lead the frames too far


class CatchUpTrack(ClipTrack):
    """A :class:`ClipTrack` that, behind after a stall, sends what it owes at twice real time,
    as a loop slowed by load reads the packets waiting in its socket: its frames reach the
    ingest late for about as long as the stall lasted."""

    last: float | None = None

    async def recv(self) -> AudioFrame:
        frame = await super().recv()
        gap = FRAME / RATE / 2
        if self.last is not None and time.monotonic() - self.last < gap:
            await asyncio.sleep(gap - (time.monotonic() - self.last))
        self.last = time.monotonic()
        return frame


def test_an_ingest_held_up_loses_no_frames_and_keeps_its_readings_behind_them() -> None:
    """The ingest's event loop blocked for ``STALL_S`` in the middle of a clip, as a burst of
    CPU elsewhere in the process does (the likely cause of the browser test's intermittent
    CI failure: both participants' first 11 s dead-lettered as late). The sender, in the
    same loop, then sends what it owes at twice real time (:class:`CatchUpTrack`). Its
    frames must be placed where they belong, none dropped as late (a tick after the stall
    used to emit them as silence, by the media clock alone), and no network reading may be
    published more than ``MAX_LEAD_MS`` ahead of the participant's frames (one stamped after
    a stall over 5 s made the engine reject those frames as late; services/ingest/network.py,
    "Order")."""
    from prometheus_client import REGISTRY

    audio, labels = clip("f_us_fast_loud")
    audio = np.concatenate((np.zeros(RATE, dtype=np.float32), audio))  # the stall in speech
    labels = "0" * 50 + labels
    late = "rapport_webrtc_late_level_frames_total"
    before = REGISTRY.get_sample_value(late) or 0.0
    stalled_until: list[float] = []

    async def scenario() -> list[dict[str, Any]]:
        async with ingest_client(CONFIG) as (client, sink):
            pc, answer = await join(client, "s3", "p1", "client", CatchUpTrack(audio))
            assert answer["status"] == 200, answer
            await asyncio.sleep(1.5)
            time.sleep(STALL_S)  # the point: the event loop held up
            stalled_until.append(time.time() * 1000)  # on the session clock (epoch ms)
            await asyncio.sleep(len(audio) / RATE)
            await client.delete("/v1/sessions/s3/participants/p1", headers=auth(INGEST_C1))
            await pc.close()
            return values(sink.events)

    events = run(scenario())
    lost = (REGISTRY.get_sample_value(late) or 0.0) - before
    through = None  # the end of the participant's frames published so far
    leads = []
    after_stall = 0
    for event in events:
        if event["type"] == "activity":
            through = event["start_ms"] + 20 * len(event["levels"])
        elif event["type"] == "network" and through is not None:
            leads.append(event["ts_ms"] - through)
            after_stall += event["ts_ms"] >= stalled_until[0]
    print(f"stall {STALL_S} s: late level frames {lost:.0f}, readings' lead over the "
          f"frames (ms) {leads}")
    assert after_stall >= 1  # readings taken after the stall were checked
    assert max(leads) <= MAX_LEAD_MS
    assert lost == 0
    score = agreement(voiced_of(events, "p1"), labels)
    print(f"agreement {score:.3f}")
    assert score >= 0.93
