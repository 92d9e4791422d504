"""Reading recordings for ``rapport vad`` and ``rapport analyze --audio``: libsndfile first,
FFmpeg (PyAV) for the containers libsndfile does not read.

libsndfile (``soundfile``) reads WAV, FLAC, Ogg Vorbis and Opus, MP3, AIFF and more, and
gives each file's exact sample count from its header. A telehealth call's recording often
comes in a container it cannot open: WebM or Matroska with Opus (what a browser's
MediaRecorder writes), MP4 or M4A with AAC (what meeting platforms export; a video file's
audio too). Those are read through PyAV, FFmpeg's libraries, installed with aiortc: decoded in
memory, converted to float samples at the stream's own rate and channel count, the first audio
stream only. Their sample count comes from a first decoding pass (a MediaRecorder WebM
carries no duration); decoding Opus costs about 1 ms of CPU per second of audio. Nothing is
written anywhere.

Both readers yield blocks of ``(samples, channels)`` float32 arrays; an error in the middle of
a file becomes :class:`AudioFileError` naming the file and where.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np
import numpy.typing as npt
import soundfile as sf

from models.errors import ValidationError

Reader = Literal["libsndfile", "ffmpeg"]


class AudioFileError(ValidationError):
    """A file given as audio cannot be read as audio; ``field`` is the file's path."""


@dataclass(frozen=True, slots=True)
class AudioInfo:
    """What a file holds: its first audio stream's rate, channels and samples per channel,
    and which library reads it."""

    sample_rate: int
    channels: int
    frames: int
    reader: Reader


def probe(name: str) -> AudioInfo:
    """The file's :class:`AudioInfo`, or :class:`AudioFileError` saying why it is not audio."""
    path = Path(name)
    if not path.exists():
        raise AudioFileError(name, "no such file")
    if path.is_dir():
        raise AudioFileError(name, "is a directory, not an audio file")
    try:
        info = sf.info(name)
    except (sf.LibsndfileError, RuntimeError) as error:
        libsndfile = getattr(error, "error_string", None) or str(error)
        found = _probe_ffmpeg(name, libsndfile)
    except OSError as error:
        raise AudioFileError(name, f"cannot read: {error.strerror}") from None
    else:
        found = AudioInfo(info.samplerate, info.channels, info.frames, "libsndfile")
    if found.frames <= 0 or found.sample_rate <= 0 or found.channels <= 0:
        raise AudioFileError(name, "holds no audio")
    return found


def _probe_ffmpeg(name: str, libsndfile: str) -> AudioInfo:
    def refused(reason: str) -> AudioFileError:
        return AudioFileError(name, f"not an audio file libsndfile or FFmpeg can read "
                                    f"(libsndfile: {libsndfile}; FFmpeg: {reason})")

    try:
        with av.open(name) as container:
            if not container.streams.audio:
                raise refused("no audio stream")
            stream = container.streams.audio[0]
            rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
            frames = sum(frame.samples for frame in container.decode(stream))
    except av.FFmpegError as error:
        raise refused(error.strerror or str(error)) from None
    return AudioInfo(rate, channels, frames, "ffmpeg")


def blocks(path: Path, reader: Reader, blocksize: int, start: int = 0
           ) -> Generator[npt.NDArray[np.float32], None, None]:
    """The file's samples from ``start``, ``blocksize`` at a time (the last block shorter),
    as float32 ``(samples, channels)``. Float samples are read as floats: libsndfile reads a
    float file (WAV FLOAT, for one) as integers without scaling, every sample 0."""
    done = start
    try:
        found = sf.blocks(str(path), blocksize=blocksize, start=start, dtype="float32",
                          always_2d=True) if reader == "libsndfile" else \
            _ffmpeg_blocks(path, blocksize, start)
        for block in found:
            yield block
            done += len(block)
    except (sf.LibsndfileError, RuntimeError, av.FFmpegError) as error:
        raise AudioFileError(str(path), f"unreadable after {done} samples ({error})") from None


def head(path: Path, reader: Reader, frames: int) -> npt.NDArray[np.float32]:
    """The file's first ``frames`` samples (fewer if it is shorter), ``(samples, channels)``."""
    found = blocks(path, reader, frames)
    try:
        first = next(found, None)
    finally:
        found.close()
    return first if first is not None else np.zeros((0, 1), dtype=np.float32)


def _ffmpeg_blocks(path: Path, blocksize: int, start: int) -> Iterator[npt.NDArray[np.float32]]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels
        pending: list[npt.NDArray[np.float32]] = []
        held, skip = 0, start
        for frame in container.decode(stream):
            samples = _float_samples(frame, channels, path)
            if skip:
                cut = min(skip, len(samples))
                samples, skip = samples[cut:], skip - cut
            pending.append(samples)
            held += len(samples)
            while held >= blocksize:
                joined = np.concatenate(pending)
                yield joined[:blocksize]
                pending, held = [joined[blocksize:]], held - blocksize
        if held:
            yield np.concatenate(pending)


def _float_samples(frame: Any, channels: int, path: Path) -> npt.NDArray[np.float32]:
    """One decoded frame as float32 ``(samples, channels)`` in -1..1, whatever its format."""
    data = frame.to_ndarray()
    data = data.T if frame.format.is_planar else data.reshape(-1, channels)
    kind = frame.format.name.rstrip("p")
    if kind in ("flt", "dbl"):
        return np.asarray(data, dtype=np.float32)
    scale = {"u8": 128.0, "s16": 32768.0, "s32": 2147483648.0, "s64": 9.223372036854776e18}
    if kind not in scale:
        raise AudioFileError(str(path), f"decodes to {frame.format.name} samples, a format "
                                        "this reader does not know")
    values = data.astype(np.float64)
    if kind == "u8":
        values -= 128.0
    out: npt.NDArray[np.float32] = (values / scale[kind]).astype(np.float32)
    return out
