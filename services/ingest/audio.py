"""Audio mode of the WebRTC ingest: decoded audio -> 16 kHz -> :class:`models.vad.StreamingVad`.

aiortc decodes Opus into 48 kHz s16 frames (usually stereo, 960 samples) whose ``pts`` counts
samples from the stream's first packet. Audio is placed by ``pts``, so the VAD's frame grid stays
on the media clock and frame ``i`` of the VAD is frame ``i`` of the participant's grid (see
services/ingest/frames.py). A gap is filled (:func:`gap_fill`): up to :data:`CONCEAL_S` (lost
packets; aiortc does no concealment of its own) by the audio just before it, repeated, as a
receiver's packet-loss concealment would; a longer one (DTX's silence, an outage) by zeros.
Zeros in the middle of speech cost the VAD much of it: with 5 % of packets lost, the default's
F1 on real speech fell by up to 0.2 in noise; with the repetition it stays within 0.01 of no
loss in 62 of 70 set-conditions, 0.045 at most (docs/vad.md, "Lost packets"). The audio itself
lives only in these buffers, for at most ``chunk_ms`` (and the last :data:`CONCEAL_S` for a
gap); it is never written anywhere.
"""

from __future__ import annotations

import time

import numpy as np
import numpy.typing as npt

from models.vad import Resampler, StreamingVad, VadConfig, pcm16_to_mono
from services.ingest import metrics
from services.ingest.frames import FrameBatch, FrameBatcher
from services.ingest.vad_backend import FrameVad

VAD_RATE = 16_000
MAX_GAP_S = 60.0  # a longer pts jump is a new stream origin, not silence to synthesize
# A gap up to this long is taken for lost packets (three 20 ms packets) and concealed; a longer
# one is silence. Chosen on the tuning sets (docs/vad.md, "Lost packets"): 20 ms concealed
# too little of 5 % random loss, 100 ms no more than 60.
CONCEAL_S = 0.06


def gap_fill(recent: npt.NDArray[np.float32], gap: int,
             limit: int) -> tuple[npt.NDArray[np.float32], bool]:
    """What the VAD hears for ``gap`` missing samples after ``recent`` (the samples before the
    gap, same rate), and whether it is concealed: the last ``gap`` of them again when ``gap``
    is at most ``limit`` and ``recent`` holds that many (lost packets: the audio goes on as it
    was), else zeros (silence: DTX, an outage, or a gap at the very start)."""
    if 0 < gap <= limit and recent.size >= gap:
        return np.array(recent[recent.size - gap:], dtype=np.float32), True
    return np.zeros(max(gap, 0), dtype=np.float32), False


class AudioVadFramer:
    """One participant's decoded audio -> ``voiced`` frame batches.

    ``origin_ms`` is the session-clock time of ``pts`` 0 (the first RTP packet's arrival).
    The VAD runs on chunks of ``chunk_ms`` (it is vectorised per chunk); its decisions depend
    only on the audio, never on the chunking (models/vad.py).

    ``chunk_ms`` defaults to ``batch_ms`` and chunks end on multiples of it on the VAD's own
    grid (sample 0 = frame 0 = the first batch's start): frames are only published per batch
    anyway, so the VAD runs exactly when a batch's last sample has arrived. That adds no
    latency (a smaller chunk would decide the same batch no earlier) and gives the VAD one call
    per batch, where its per-call overhead is smallest (bench/vad.py prints the RTF at this
    chunk size).

    ``conceal_s``: the longest gap in the frames' ``pts`` filled by repeating the audio before
    it (:func:`gap_fill`; 0 fills every gap with zeros).
    """

    def __init__(self, origin_ms: int, *, batch_ms: int = 1000, first_seq: int = 0,
                 vad_config: VadConfig | None = None, chunk_ms: int | None = None,
                 vad: FrameVad | None = None, conceal_s: float = CONCEAL_S) -> None:
        # ``vad``: the participant's VAD from the configured backend (vad_backend.py).
        self.vad: FrameVad = vad if vad is not None else StreamingVad(vad_config, VAD_RATE)
        self.frame_ms = self.vad.frame_samples * 1000 // VAD_RATE
        self.batcher = FrameBatcher(origin_ms, self.frame_ms, batch_ms, "voiced",
                                    first_seq=first_seq)
        self.chunk_samples = max(VAD_RATE * (chunk_ms or batch_ms) // 1000, 1)
        self._pushed = 0  # samples given to the VAD so far
        self.gap_samples = 0  # input samples synthesized for gaps (DTX, loss)
        self.concealed_samples = 0  # of those, repeated audio (:func:`gap_fill`)
        self._recent = np.zeros(0, dtype=np.float32)  # the last input samples, for a gap
        self._conceal_s = conceal_s  # the longest gap concealed (0: none), seconds...
        self._conceal = 0  # ...and in input samples, once the rate is known
        self._resampler: Resampler | None = None
        self._rate = 0
        self._next_pts: int | None = None
        self._pending: list[npt.NDArray[np.float32]] = []
        self._pending_samples = 0

    @property
    def next_seq(self) -> int:
        return self.batcher.next_seq

    def frame(self, pcm: npt.ArrayLike, channels: int, sample_rate: int,
              pts: int | None) -> list[FrameBatch]:
        """One decoded frame: interleaved s16 samples, its layout and ``pts`` (in samples)."""
        mono = pcm16_to_mono(pcm, channels)
        if self._resampler is None:
            self._resampler = Resampler(sample_rate, VAD_RATE)
            self._rate = sample_rate
            self._next_pts = pts if pts is not None else 0
            self._conceal = round(self._conceal_s * sample_rate)
        resampler = self._resampler
        expected = self._next_pts if self._next_pts is not None else 0
        if pts is not None:
            gap = pts - expected
            if 0 < gap <= MAX_GAP_S * self._rate:
                fill, concealed = gap_fill(self._recent, gap, self._conceal)
                self.gap_samples += gap
                self.concealed_samples += gap if concealed else 0
                metrics.AUDIO_GAPS.labels("concealed" if concealed else "silence").inc(
                    gap / self._rate)
                self._heard(resampler, fill)
            elif gap < 0:
                mono = mono[min(-gap, len(mono)):]  # overlap with what was already placed
            expected = max(pts, expected)
        self._next_pts = expected + len(mono)
        self._heard(resampler, mono)
        if (self._pushed % self.chunk_samples) + self._pending_samples < self.chunk_samples:
            return []
        return self._decide(aligned=True)

    def finish(self) -> list[FrameBatch]:
        """End of the stream: the resampler's and VAD's held-back audio and the VAD's last
        frames (its lookahead and trim hold them back while audio may follow), the last
        batch."""
        if self._resampler is not None:
            self._add(self._resampler.flush())
        out = self._decide()
        first = self.vad.frames_decided
        tail = self.vad.finish()  # the VAD's last frames: the stream has no more audio
        if tail:
            self.batcher.put(first, tail.encode("ascii"))
        return out + self.batcher.flush(self.vad.frames_decided)

    def _heard(self, resampler: Resampler, mono: npt.NDArray[np.float32]) -> None:
        """Input-rate samples placed next on the media clock: to the VAD, and the last
        :data:`CONCEAL_S` of them kept for a gap."""
        if self._conceal:
            self._recent = np.concatenate((self._recent, mono))[-self._conceal:]
        self._add(resampler.process(mono))

    def _add(self, samples: npt.NDArray[np.float32]) -> None:
        if samples.size:
            self._pending.append(samples)
            self._pending_samples += samples.size

    def _decide(self, aligned: bool = False) -> list[FrameBatch]:
        """Run the VAD on the pending audio: all of it, or (``aligned``) up to the last chunk
        boundary it reaches, keeping the rest pending."""
        if not self._pending:
            return []
        first = self.vad.frames_decided
        audio = np.concatenate(self._pending)
        self._pending.clear()
        self._pending_samples = 0
        if aligned:
            cut = ((self._pushed + audio.size) // self.chunk_samples) * self.chunk_samples
            audio, rest = audio[: cut - self._pushed], audio[cut - self._pushed :]
            self._add(rest)
        self._pushed += audio.size
        cpu = time.thread_time()
        voiced = self.vad.push(audio)
        if audio.size:
            metrics.VAD_REAL_TIME_FACTOR.observe(
                (time.thread_time() - cpu) / (audio.size / VAD_RATE))
        if voiced:
            self.batcher.put(first, voiced.encode("ascii"))
        return self.batcher.ready(self.vad.frames_decided)
