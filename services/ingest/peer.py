"""One participant's WebRTC connection to the ingest (aiortc), in levels or audio mode.

**levels**: each RTP packet's RFC 6464 audio level (``urn:ietf:params:rtp-hdrext:ssrc-audio-
level``) is read from its header and placed on the frame grid by RTP timestamp
(services/ingest/frames.py); no audio is decoded at all. **audio**: aiortc decodes Opus, and
services/ingest/audio.py resamples it to 16 kHz and runs the VAD, the backend's narrowband one
for a participant who dialled in (``telephone``; docs/vad.md, "Participants who dial in"). Either
way only activity batches leave this module: audio is never stored, and logs name only ids.

Every ``tick_s`` completed level batches are published; every ``network_interval_s`` a
``network`` event (services/ingest/network.py), held until the participant's published frames
reach it (its "Order": an ingest behind its packets must not make its own frames late). When
ICE or DTLS fails or closes, the ``on_lost`` callback makes the participant leave.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from av import AudioFrame

from services.ingest import metrics
from services.ingest.audio import AudioVadFramer
from services.ingest.frames import FrameBatch, FrameZero, RtpLevelFramer
from services.ingest.network import NetworkSampler, ReadingOrder
from services.ingest.service import IngestConfig
from services.ingest.sessions import LiveParticipant
from services.ingest.vad_backend import VadBackend

log = logging.getLogger(__name__)

Mode = Literal["levels", "audio"]
AUDIO_LEVEL_URI = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
_NOT_AUDIO_CODECS = frozenset({"telephone-event", "cn", "rtx", "red"})


def offers_audio_level(sdp: str) -> bool:
    """Whether an SDP offer proposes the RFC 6464 client-to-mixer audio level extension."""
    return AUDIO_LEVEL_URI in sdp


class ParticipantPeer:
    """An aiortc peer connection receiving one participant's microphone."""

    def __init__(self, session_id: str, participant: LiveParticipant, mode: Mode,
                 config: IngestConfig, emit: Callable[[dict[str, Any]], None],
                 now_ms: Callable[[], int],
                 on_lost: Callable[[], Coroutine[Any, Any, None]], *,
                 vad: VadBackend | None = None,
                 vad_ready: asyncio.Event | None = None, telephone: bool = False) -> None:
        # ``telephone``: the participant dialled in (the platform says so in the offer); in
        # audio mode the backend's narrowband VAD reads their audio.
        self.session_id = session_id
        self.participant = participant
        self.mode: Mode = mode
        self.telephone = telephone
        self.config = config
        self._emit = emit
        self._now_ms = now_ms
        self._on_lost = on_lost
        self._vad = vad if vad is not None else VadBackend(
            config.vad_backend, config.vad, music_gate=config.vad_music_gate)
        self._vad_ready = vad_ready
        servers = [RTCIceServer(urls=url) for url in config.ice_servers]
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        self.levels = RtpLevelFramer(frame_ms=config.frame_ms, batch_ms=config.batch_ms,
                                     hold_ms=config.hold_ms, first_seq=participant.next_seq)
        self.audio: AudioVadFramer | None = None
        self.first_arrival_ms: int | None = None
        self._zero = FrameZero()  # audio mode's frame 0 (levels: self.levels.zero)
        self.packets = 0
        self._late_counted = 0  # level frames dropped as late, already in the metric
        self._payload_type: int | None = None
        self._clock_rate = 48_000
        self._tasks: list[asyncio.Task[None]] = []
        self._reader: asyncio.Task[None] | None = None
        self._closed = False
        self._lost_task: asyncio.Task[None] | None = None
        self._sampler = NetworkSampler(session_id, participant.participant_id)
        # Readings wait for the frames (services/ingest/network.py, "Order").
        self._readings = ReadingOrder()
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)
        self._gauged: str | None = metrics.peer_moved(None, self.pc.connectionState)

    # --- signaling ------------------------------------------------------------------------

    async def answer(self, sdp: str, kind: str) -> RTCSessionDescription:
        """Apply the offer, answer it (ICE gathered: aiortc takes no trickle candidates)."""
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        if self.config.rtt_probe:
            # Silence back to the participant: RTCP receiver reports on it give the RTT
            # (services/ingest/network.py). Ignored by the answer if the offer is sendonly.
            self.pc.addTrack(AudioStreamTrack())
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._tasks.append(asyncio.create_task(self._tick(), name="ingest-levels-tick"))
        self._tasks.append(asyncio.create_task(self._network(), name="ingest-network"))
        return self.pc.localDescription

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio":
            return
        for transceiver in self.pc.getTransceivers():
            if transceiver.receiver.track is track:
                self._select_codec(transceiver)
                self._wrap(transceiver.receiver)
        if self.mode == "audio":
            self._reader = asyncio.create_task(self._read_audio(track), name="ingest-audio")

    def _select_codec(self, transceiver: Any) -> None:
        for codec in getattr(transceiver, "_codecs", []):
            if codec.name.lower() not in _NOT_AUDIO_CODECS:
                self._payload_type = codec.payloadType
                self._clock_rate = codec.clockRate
                self.levels = RtpLevelFramer(
                    clock_rate=codec.clockRate, frame_ms=self.config.frame_ms,
                    batch_ms=self.config.batch_ms, hold_ms=self.config.hold_ms,
                    first_seq=self.participant.next_seq)
                self._sampler.clock_rate = codec.clockRate
                self._zero = FrameZero(codec.clockRate)
                return

    def _wrap(self, receiver: RTCRtpReceiver) -> None:
        """Read each RTP packet's audio level before aiortc handles the packet.

        aiortc parses the RFC 6464 header extension (rtp.py, ``HeaderExtensionsMap.get`` sets
        ``packet.extensions.audio_level = (vad, level)``) but exposes it nowhere: there is no
        per-packet callback, and ``getSynchronizationSources()`` carries no audio level. So the
        receiver's packet handler is wrapped on this instance (the DTLS transport calls
        ``receiver._handle_rtp_packet(packet, arrival_time_ms=…)`` for every routed packet).
        The original still runs, for RTCP statistics and receiver reports; in levels mode its
        decoder thread is stopped at the first packet, so no audio is ever decoded.
        """
        original = receiver._handle_rtp_packet
        stop_decoder = getattr(receiver, "_RTCRtpReceiver__stop_decoder", None)

        async def handle(packet: Any, arrival_time_ms: int) -> None:
            if self._closed:
                return
            if self.first_arrival_ms is None:
                self.first_arrival_ms = self._now_ms()
                if self.mode == "levels" and stop_decoder is not None:
                    stop_decoder()
            if self._payload_type is None or packet.payload_type == self._payload_type:
                self.packets += 1
                if self.mode == "levels":
                    level = packet.extensions.audio_level  # (V bit, level): V is ignored
                    self._publish(self.levels.packet(
                        packet.timestamp, None if level is None else int(level[1]),
                        self._now_ms()))
                else:
                    zero = self._zero.packet(packet.timestamp, self._now_ms())
                    if self.audio is not None:
                        self.audio.batcher.move_origin(zero)
            await original(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = handle  # type: ignore[method-assign]

    # --- media ----------------------------------------------------------------------------

    async def _read_audio(self, track: MediaStreamTrack) -> None:
        # Keep calling recv(): aiortc's track queue is unbounded.
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if self.audio is None:
                origin = self._zero.ms if self._zero.ms is not None else self._now_ms()
                if self._vad_ready is not None and not self._vad_ready.is_set():
                    await self._vad_ready.wait()  # frames queue meanwhile, placed by pts
                if self.telephone:
                    await asyncio.to_thread(self._vad.load_narrowband)
                self.audio = AudioVadFramer(origin, batch_ms=self.config.batch_ms,
                                            first_seq=self.participant.next_seq,
                                            vad_config=self.config.vad,
                                            vad=self._vad.create(narrowband=self.telephone))
            if not isinstance(frame, AudioFrame):
                continue
            pcm = frame.to_ndarray().reshape(-1)
            channels = len(frame.layout.channels)
            self._publish(self.audio.frame(pcm, channels, frame.sample_rate, frame.pts))

    def _publish(self, batches: list[FrameBatch]) -> None:
        if self.levels.batcher is not None and self.levels.batcher.late > self._late_counted:
            metrics.LATE_LEVEL_FRAMES.inc(self.levels.batcher.late - self._late_counted)
            self._late_counted = self.levels.batcher.late
        for batch in batches:
            self._emit(batch.to_event(self.session_id, self.participant.participant_id))
            self.participant.next_seq = batch.seq + 1
        if batches:
            for reading in self._readings.frames(batches[-1].end_ms):
                self._emit(reading)

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.config.tick_s
            await asyncio.sleep(self.config.tick_s)
            if self.mode != "levels":
                continue
            if loop.time() - due > self.config.tick_s:
                # The event loop was held up (something else in the process took it): the
                # packets of that time may still wait in the socket, and batches emitted now by
                # the media clock alone would drop their frames as late. They are read first;
                # the packets' own ticks, or the next tick on time, emit the batches.
                continue
            self._publish(self.levels.tick(self._now_ms()))

    async def _network(self) -> None:
        while True:
            await asyncio.sleep(self.config.network_interval_s)
            try:
                report = await self.pc.getStats()
            except Exception:
                log.debug("stats unavailable for participant %s", self.participant
                          .participant_id, exc_info=True)
                continue
            event = self._sampler.sample(report.values(), self._now_ms())
            if event is not None:
                for reading in self._readings.reading(event, self.first_arrival_ms is not None):
                    self._emit(reading)

    # --- lifecycle ------------------------------------------------------------------------

    async def _on_state(self) -> None:
        state = self.pc.connectionState
        self._gauged = metrics.peer_moved(self._gauged, None if state == "closed" else state)
        log.info("participant %s of session %s: connection %s",
                 self.participant.participant_id, self.session_id, state)
        if state in ("failed", "closed") and not self._closed and self._lost_task is None:
            self._lost_task = asyncio.create_task(self._on_lost(), name="ingest-peer-lost")

    async def close(self) -> None:
        """Stop receiving and publish the frames still buffered (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        now = self._now_ms()
        await self.pc.close()
        self._gauged = metrics.peer_moved(self._gauged, None)
        if self._reader is not None and self.first_arrival_ms is None:
            self._reader.cancel()  # never connected: nothing will end the track
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        elif self._reader is not None:
            try:
                await asyncio.wait_for(self._reader, 5.0)
            except asyncio.TimeoutError:
                log.warning("audio reader of participant %s did not stop",
                            self.participant.participant_id)
        if self.mode == "levels":
            self._publish(self.levels.finish(now))
        elif self.audio is not None:
            self._publish(self.audio.finish())
        for reading in self._readings.flush():
            self._emit(reading)
