"""Recorded audio -> wire-v1.1 events, through the WebRTC ingest's own audio mode.

``rapport vad`` and ``rapport analyze --audio`` read per-participant recordings (WAV, FLAC or
anything else libsndfile reads, and WebM, Matroska, MP4 or M4A through FFmpeg: services/cli/
audio_reader.py; any sample rate; mono or multi-channel) and produce the
``speech`` events the ingest's audio mode would publish for the same audio (METRICS.md §1, §9):
each track runs through :class:`services.ingest.audio.AudioVadFramer` (the same 16 kHz
resampling, VAD backend, ``batch_ms`` chunking and frame grid as a WebRTC participant whose
first packet arrived at session time 0), and consecutive voiced frames become one segment
(§1: "consecutive voiced frames form a segment"; §2's bridging and dropping are the engine's).
A file sampled at 8 kHz or less (:data:`~services.ingest.vad_backend.NARROWBAND_MAX_RATE`, a
telephone line) is narrowband: the silero backend then adds its 8 kHz network and that
network's head (models/vad_silero.py, "Narrowband audio"). So is a file at a higher rate whose
first :data:`SCAN_S` seconds hold nothing above 4 kHz (:data:`NARROWBAND_CONTENT_DB`): a
telephone recording stored at 16, 44.1 or 48 kHz. So is a participant declared to have dialled
in (``rapport vad --telephone ID``; :func:`mark_telephone`), whatever the file holds: a call's
recording of such a participant has passed Opus, which fills the band above 4 kHz, as the
ingest's ``"telephone": true`` offers do (docs/vad.md, "Participants who dial in"). A float file
whose samples pass full scale is lowered by one constant gain to fit it, not clipped. A file
whose speech peaks under
models/vad_level.py's floor (measured over the whole file, read once more block by block, so a
quiet first minute does not decide for a loud hour) is quiet: it is lifted by one constant
gain up to that floor before the VAD (at most ``MAX_LIFT_DB``), as a louder microphone setting
would have recorded it; the ingest gets no such lift (a browser's microphone applies its own
gain control). Both are logged at INFO.

Samples become signed 16-bit PCM, what the ingest's Opus decoder hands the VAD, in blocks
(:func:`services.cli.audio_reader.blocks`), so hours of audio never sit in memory at once; a
file's channels are averaged into one participant as the ingest averages a stereo track, unless
each channel is its own participant (``channels=True``). The audio is read and discarded;
nothing is written.

With several tracks, :func:`crosstalk_free_events` also drops each frame that is another
track's voice bleeding into this track's microphone (models/crosstalk.py; docs/vad.md,
"Crosstalk"): every track is decided first, then compared frame by frame with the others.
There a file is read twice whatever its channels (:func:`scans`, then
:func:`voiced_frames_together`: each channel's VAD fed the same blocks as alone), the second
pass also giving the frame levels the comparison reads.
"""

from __future__ import annotations

import heapq
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.crosstalk import FRAME_MS, SILENT_DB, frame_levels_db, without_crosstalk
from models.errors import ValidationError
from models.events import MAX_ID_LENGTH, ROLES, Role
from models.vad_bands import power_above_db
from models.vad_level import frame_powers, gain, level_of_powers, lift_db
from services.cli.audio_reader import Reader, blocks, head, probe
from services.ingest.audio import AudioVadFramer
from services.ingest.frames import FrameBatch
from services.ingest.vad_backend import NARROWBAND_MAX_RATE, VadBackend

log = logging.getLogger(__name__)

BATCH_MS = 1000  # IngestConfig.batch_ms: the VAD runs once per batch, as in the ingest
BLOCK_S = 10  # seconds of audio read per block
# A file whose first SCAN_S seconds hold less than this share of their power at and above
# 4 kHz is narrowband, whatever its rate: audio resampled from 8 kHz keeps only a resampler's
# leakage there (-135 to -140 dB), the real wideband recordings here -12 to -52 dB, and the
# telephone sample stored at 16 kHz (tests/data/real) -66 dB (docs/vad.md, "Narrowband audio").
NARROWBAND_CONTENT_DB = -60.0
SCAN_S = 60
_NOT_ID = re.compile(r"[^\x21-\x7e]+")  # wire ids are printable ASCII without spaces (§9)
_VOICED_RUN = re.compile(rb"1+")


@dataclass(frozen=True, slots=True)
class Track:
    """One participant's audio: a file, and one of its channels or (``None``) all averaged."""

    path: Path
    participant_id: str
    channel: int | None
    channels: int  # of the file
    sample_rate: int
    frames: int  # samples per channel
    reader: Reader = "libsndfile"  # services/cli/audio_reader.py
    telephone: bool = False  # declared to have dialled in: read as narrowband audio

    @property
    def duration_ms(self) -> int:
        return math.ceil(self.frames * 1000 / self.sample_rate)


def identifier(text: str) -> str:
    """``text`` as a wire id (§9: 1..128 printable ASCII characters, no spaces)."""
    return (_NOT_ID.sub("_", text) or "_")[:MAX_ID_LENGTH]


def open_tracks(paths: Sequence[str], *, per_channel: bool = False) -> list[Track]:
    """Check every file before any is processed (so a bad last file fails at once, naming
    it) and name one participant per file, or per channel with ``per_channel``: the file's
    stem, plus ``-ch1``, ``-ch2``… per channel. A repeated name gets ``-2``, ``-3``…"""
    tracks: list[Track] = []
    used: set[str] = set()
    for name in paths:
        info = probe(name)
        stem = identifier(Path(name).stem)[: MAX_ID_LENGTH - 8]
        channels: list[int | None] = (
            list(range(info.channels)) if per_channel else [None])
        for channel in channels:
            base = stem if channel is None else f"{stem}-ch{channel + 1}"
            participant, n = base, 1
            while participant in used:
                n += 1
                participant = f"{base}-{n}"
            used.add(participant)
            tracks.append(Track(Path(name), participant, channel, info.channels,
                                info.sample_rate, info.frames, info.reader))
    return tracks


def mark_telephone(tracks: Sequence[Track], participants: Sequence[str]) -> list[Track]:
    """``tracks`` with the named participants marked as having dialled in (read as
    narrowband audio); a name that is no track's participant is a :class:`ValidationError`
    naming ``telephone`` and listing the participants."""
    known = {track.participant_id for track in tracks}
    for name in participants:
        if name not in known:
            raise ValidationError("telephone", f"no participant {name!r} (the participants: "
                                               f"{', '.join(t.participant_id for t in tracks)})")
    chosen = set(participants)
    return [replace(track, telephone=True) if track.participant_id in chosen else track
            for track in tracks]


def assign_roles(tracks: Sequence[Track], roles: Sequence[str] | None) -> list[Role]:
    """Each track's role: ``roles`` in track order, or by default the first one therapist and
    the others client."""
    if roles is None:
        first: list[Role] = ["therapist"]
        return first + ["client"] * (len(tracks) - 1)
    if len(roles) != len(tracks):
        names = ", ".join(t.participant_id for t in tracks)
        raise ValidationError("roles", f"{len(roles)} roles given for {len(tracks)} "
                                       f"participants ({names})")
    out: list[Role] = []
    for name in roles:
        role = next((r for r in ROLES if r == name), None)
        if role is None:
            raise ValidationError("roles", f"{name!r} is not one of {', '.join(ROLES)}")
        out.append(role)
    return out


@dataclass(frozen=True, slots=True)
class Scan:
    """What a track's audio says before the VAD runs (the module docstring): whether it is
    narrowband (from its first :data:`SCAN_S` seconds), and the lift in dB its samples get
    (from all of it)."""

    narrowband: bool
    lift_db: float  # negative: a float recording past full scale, lowered to fit it


# Told, after each block a track's VAD has read, the track and its samples read so far (the
# command line shows it on a terminal: services/cli/vad.py).
Progress = Callable[["Track", int], None]


def scan(track: Track) -> Scan:
    """Read the track for :class:`Scan`: its first :data:`SCAN_S` seconds, then (for the
    level) the rest in blocks."""
    return scans([track])[0]


def scans(tracks: Sequence[Track]) -> list[Scan]:
    """:func:`scan` of tracks of one file (its channels), read once for all of them."""
    first = tracks[0]
    audio = head(first.path, first.reader, first.sample_rate * SCAN_S)
    found = [_Scanning(track, _channel_of(audio, track)) for track in tracks]
    if first.frames > len(audio):
        for block in blocks(first.path, first.reader, first.sample_rate * BLOCK_S,
                            start=len(audio)):
            for scanning in found:
                scanning.add(_channel_of(block, scanning.track))
    return [scanning.result() for scanning in found]


def _channel_of(block: npt.NDArray[np.float32], track: Track) -> npt.NDArray[np.float32]:
    """The track's part of a block of its file: its channel, or every channel."""
    return block if track.channel is None else block[:, track.channel:track.channel + 1]


def _mono(block: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """A track's block as one channel, NaN as silence and infinity as full scale."""
    out: npt.NDArray[np.float32] = np.nan_to_num(block.mean(axis=1), nan=0.0, posinf=1.0,
                                                 neginf=-1.0)
    return out


class _Scanning:
    """One track's :class:`Scan` as its file is read: its first :data:`SCAN_S` seconds
    (``audio``), then :meth:`add` per block after them."""

    def __init__(self, track: Track, audio: npt.NDArray[np.float32]) -> None:
        self.track = track
        mono = _mono(audio)
        self.peak = _peak(audio)
        narrow = track.sample_rate <= NARROWBAND_MAX_RATE
        if track.telephone and not narrow:
            narrow = True
            log.info("%s: declared to have dialled in, read as narrowband audio",
                     track.participant_id)
        if not narrow:
            content = power_above_db(mono, track.sample_rate)
            narrow = content is not None and content < NARROWBAND_CONTENT_DB
            if narrow:
                log.info("%s: nothing above 4 kHz (%.0f dB of the power), read as narrowband "
                         "audio", track.participant_id, content)
        self.narrow = narrow
        self.powers = [frame_powers(mono, track.sample_rate)]

    def add(self, block: npt.NDArray[np.float32]) -> None:
        self.powers.append(frame_powers(_mono(block), self.track.sample_rate))
        self.peak = max(self.peak, _peak(block))

    def result(self) -> Scan:
        level = level_of_powers(np.concatenate(self.powers))
        lift = lift_db(level)
        if lift:
            log.info("%s: quiet recording (speech peaks at %.0f dBFS), lifted by %.1f dB "
                     "before the VAD", self.track.participant_id, level, lift)
        elif self.peak > 1.0:
            # Only a float file holds samples past full scale. 16-bit PCM would clip them,
            # and clipping turns loud speech and its room into broadband noise the VAD hears
            # as voice (a recording stored 60 dB too loud: false speech in its pauses); one
            # gain keeps it.
            lift = -20.0 * math.log10(self.peak)
            log.info("%s: samples up to %.1f dB past full scale, lowered by %.1f dB before "
                     "the VAD rather than clipped", self.track.participant_id, -lift, -lift)
        return Scan(self.narrow, lift)


def _peak(block: npt.NDArray[np.float32]) -> float:
    """The largest magnitude of ``block``'s finite samples (0 when it has none)."""
    finite = np.abs(block[np.isfinite(block)])
    return float(finite.max()) if finite.size else 0.0


def narrowband(track: Track) -> bool:
    """Whether the track's audio is narrowband (the module docstring says when)."""
    return scan(track).narrowband


class _TrackVad:
    """One track through the ingest's audio mode, block by block (:func:`voiced_batches`)."""

    def __init__(self, track: Track, backend: VadBackend, found: Scan,
                 progress: Progress | None, levels: list[npt.NDArray[np.float64]] | None
                 ) -> None:
        self.track, self.found, self.progress, self.levels = track, found, progress, levels
        self.framer = AudioVadFramer(0, batch_ms=BATCH_MS,
                                     vad=backend.create(narrowband=found.narrowband))
        self.factor = np.float32(gain(found.lift_db))
        self.pts = 0

    def feed(self, block: npt.NDArray[np.float32]) -> Iterator[FrameBatch]:
        """The batches decided once the file's next ``block`` is read."""
        track = self.track
        block = _channel_of(block, track)
        if self.levels is not None:
            self.levels.append(frame_levels_db(_mono(block), track.sample_rate))
        channels = block.shape[1]
        samples = block.reshape(-1)
        bad = ~np.isfinite(block)
        if bad.any():
            # A float file can hold NaN or infinity, which 16-bit PCM cannot: silence for
            # NaN, full scale for infinity, said once per block.
            log.warning("%s: %d samples that are not numbers (NaN or infinity), the first at "
                        "sample %d, read as silence (NaN) or full scale (infinity)",
                        track.path.name, int(bad.sum()),
                        self.pts + int(np.argmax(bad.any(axis=1))))
            samples = np.nan_to_num(samples, nan=0.0, posinf=1.0, neginf=-1.0)
        if self.found.lift_db:
            samples = samples * self.factor
        pcm = np.clip(np.rint(samples * 32768.0), -32768, 32767).astype(np.int16)
        yield from self.framer.frame(pcm, channels, track.sample_rate, self.pts)
        self.pts += len(block)
        if self.progress is not None:
            self.progress(track, self.pts)

    def finish(self) -> Iterator[FrameBatch]:
        yield from self.framer.finish()


def voiced_batches(track: Track, backend: VadBackend, progress: Progress | None = None,
                   levels: list[npt.NDArray[np.float64]] | None = None
                   ) -> Iterator[FrameBatch]:
    """The track's ``voiced`` frame batches from the ingest's audio mode, frame 0 at ms 0;
    ``progress`` is told the samples read after each block; ``levels``, if given, gets each
    block's 20 ms frame levels in dB full scale (models/crosstalk.py; blocks of whole seconds
    start on the frame grid at any rate), read with the VAD's own pass over the file."""
    vad = _TrackVad(track, backend, scan(track), progress, levels)
    for block in blocks(track.path, track.reader, track.sample_rate * BLOCK_S):
        yield from vad.feed(block)
    yield from vad.finish()


def segments(batches: Iterable[FrameBatch], max_segment_ms: int) -> Iterator[tuple[int, int]]:
    """Runs of consecutive voiced frames across batches, as ``[start_ms, end_ms)`` (§1), cut
    into pieces of at most ``max_segment_ms`` (longer ones would be rejected; touching
    segments merge again in §2.1)."""
    start = end = -1
    for batch in batches:
        for run in _VOICED_RUN.finditer(batch.data):
            run_start = batch.start_ms + run.start() * batch.frame_ms
            run_end = batch.start_ms + run.end() * batch.frame_ms
            if run_start != end:
                if start >= 0:
                    yield start, end
                start = run_start
            end = run_end
            while end - start > max_segment_ms:
                yield start, start + max_segment_ms
                start += max_segment_ms
    if start >= 0:
        yield start, end


def session_start(session_id: str, clinic_id: str, tracks: Sequence[Track],
                  roles: Sequence[Role]) -> dict[str, Any]:
    return {"type": "session.start", "session_id": session_id, "ts_ms": 0,
            "clinic_id": clinic_id,
            "participants": [{"participant_id": t.participant_id, "role": role}
                             for t, role in zip(tracks, roles, strict=True)]}


def session_end(session_id: str, tracks: Sequence[Track]) -> dict[str, Any]:
    """At the end of the longest recording (every recording starts at session time 0)."""
    return {"type": "session.end", "session_id": session_id,
            "ts_ms": max(t.duration_ms for t in tracks)}


def speech_events(session_id: str, track: Track, backend: VadBackend, max_segment_ms: int,
                  progress: Progress | None = None) -> Iterator[dict[str, Any]]:
    """The track's ``speech`` events, in time order, as its audio is read."""
    for start, end in segments(voiced_batches(track, backend, progress), max_segment_ms):
        yield {"type": "speech", "session_id": session_id,
               "participant_id": track.participant_id, "start_ms": start, "end_ms": end}


def voiced_frames(track: Track, backend: VadBackend, progress: Progress | None = None,
                  levels: list[npt.NDArray[np.float64]] | None = None
                  ) -> npt.NDArray[np.bool_]:
    """Every frame the track's VAD decided (:func:`voiced_batches`, which also fills
    ``levels``), frame 0 at ms 0."""
    return _decided(voiced_batches(track, backend, progress, levels))


def voiced_frames_together(tracks: Sequence[Track], backend: VadBackend,
                           progress: Progress | None,
                           levels: Sequence[list[npt.NDArray[np.float64]]]
                           ) -> list[npt.NDArray[np.bool_]]:
    """:func:`voiced_frames` of tracks of one file (its channels), read once for all of
    them: the same frames, each track's VAD fed the same blocks."""
    first = tracks[0]
    vads = [_TrackVad(track, backend, found, progress, parts) for track, found, parts
            in zip(tracks, scans(tracks), levels, strict=True)]
    batches: list[list[FrameBatch]] = [[] for _ in tracks]
    for block in blocks(first.path, first.reader, first.sample_rate * BLOCK_S):
        for vad, out in zip(vads, batches, strict=True):
            out.extend(vad.feed(block))
    return [_decided([*out, *vad.finish()]) for vad, out in zip(vads, batches, strict=True)]


def _decided(batches: Iterable[FrameBatch]) -> npt.NDArray[np.bool_]:
    """Voiced frame batches as one flag per frame, frame 0 at ms 0."""
    decided = bytearray()
    for batch in batches:
        first = batch.start_ms // batch.frame_ms
        decided[len(decided):] = b"0" * max(first - len(decided), 0)
        decided[first:first + len(batch.data)] = batch.data
    flags: npt.NDArray[np.bool_] = np.frombuffer(bytes(decided), dtype=np.uint8) == ord("1")
    return flags


def frame_levels(parts: Sequence[npt.NDArray[np.float64]], frames: int
                 ) -> npt.NDArray[np.float64]:
    """A track's first ``frames`` frame levels from its blocks' (:func:`voiced_batches`),
    silent past its end."""
    levels = np.concatenate(parts) if parts else np.zeros(0)
    return np.concatenate((levels, np.full(max(frames - len(levels), 0), SILENT_DB)))[:frames]


def crosstalk_free_events(session_id: str, tracks: Sequence[Track], backend: VadBackend,
                          max_segment_ms: int, progress: Progress | None = None
                          ) -> Iterator[dict[str, Any]]:
    """The tracks' ``speech`` events in order of end, with each frame that is another track's
    voice bleeding into this one's microphone dropped (models/crosstalk.py). Every track is
    decided before the first event: the bleed is read off whole recordings."""
    parts: list[list[npt.NDArray[np.float64]]] = [[] for _ in tracks]
    voiced: list[npt.NDArray[np.bool_]] = [np.zeros(0, dtype=bool)] * len(tracks)
    files: dict[Path, list[int]] = {}  # the tracks of each file: its channels read at once
    for k, track in enumerate(tracks):
        files.setdefault(track.path, []).append(k)
    for chosen in files.values():
        decided = voiced_frames_together([tracks[k] for k in chosen], backend, progress,
                                         [parts[k] for k in chosen])
        for k, flags in zip(chosen, decided, strict=True):
            voiced[k] = flags
    levels = [frame_levels(p, len(v)) for p, v in zip(parts, voiced, strict=True)]
    kept, found = without_crosstalk(voiced, levels)
    for (i, j), pair in found.items():
        for source, target, difference in ((i, j, pair.a_into_b), (j, i, pair.b_into_a)):
            if difference is not None:
                log.info("crosstalk: %s's voice reaches %s's microphone %.0f dB under its own "
                         "(the level difference of their shared speech frames)",
                         tracks[source].participant_id, tracks[target].participant_id,
                         abs(difference))
    for track, before, after in zip(tracks, voiced, kept, strict=True):
        dropped = int(np.sum(before & ~after))
        if dropped:
            log.info("%s: %.1f s of crosstalk dropped (%.0f %% of the speech its VAD called)",
                     track.participant_id, dropped * FRAME_MS / 1000,
                     100 * dropped / max(int(before.sum()), 1))

    def events(track: Track, decided: npt.NDArray[np.bool_]) -> Iterator[dict[str, Any]]:
        batch = FrameBatch(0, 0, FRAME_MS, np.where(decided, b"1", b"0").tobytes(), "voiced")
        for start, end in segments([batch], max_segment_ms):
            yield {"type": "speech", "session_id": session_id,
                   "participant_id": track.participant_id, "start_ms": start, "end_ms": end}

    yield from heapq.merge(*(events(t, d) for t, d in zip(tracks, kept, strict=True)),
                           key=lambda event: int(event["end_ms"]))
