"""``rapport vad``: recorded audio -> the ``speech`` events the WebRTC ingest's audio mode
would publish for it (services/cli/audio_files.py), as JSONL on stdout."""

from __future__ import annotations

import argparse
import heapq
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import orjson

from models.errors import ConfigError, ValidationError
from services.cli.arguments import add_music_gate
from services.settings import VAD_BACKENDS

if TYPE_CHECKING:
    from services.cli.audio_files import Track

EXIT_OK = 0
EXIT_BAD_INPUT = 2

VAD_HELP = (
    "The VAD is that of the WebRTC ingest's audio mode (docs/ingest.md), chosen by --backend "
    "(default: $RAPPORT_VAD_BACKEND, else auto): auto runs silero when onnxruntime, onnx and "
    "the silero-vad wheel are installed (pip install 'rapport[silero]' && pip install "
    "--no-deps silero-vad; make setup does), else rapport, and then logs a WARNING saying "
    "so; silero (the Silero VAD ONNX model, shown its input without a DC offset or drift "
    "that dominates it: speech where its own probability says so, each "
    "unit trimmed, or where Rapport's head, a layer refitted on real speech over the model's "
    "recurrent state, its speech probability and each band's level over its own noise floor, "
    "is confident; its state starting again from the last 2 s at the first pause after "
    "30 s of a stream, or earlier where a fresh state hears speech it no longer hears, so "
    "that it cannot stay deaf over a long one; models/vad_silero.py, "
    "models/vad_decision.py, models/vad_head.py, models/vad_bands.py, models/vad_offset.py "
    "and models/vad_restart.py; the more "
    "accurate on real speech; for a file sampled at 8 kHz or less, or one whose first minute "
    "holds nothing above 4 kHz (a telephone line's narrowband audio), or a participant "
    "named by --telephone, it also runs the "
    "model file's 8 kHz network, with a head of its own "
    "in place of the 16 kHz one's: models/vad_silero.py, models/vad_narrowband_head.py, "
    "'Narrowband audio') stops the command (exit 2) when its extra is missing, "
    "saying what to install; rapport (models/vad.py: spectral noise floor and band SNR, numpy "
    "and librosa, always available). Audio is "
    "read as 16-bit PCM in blocks of a few seconds (WAV, FLAC or any format libsndfile reads; "
    "WebM, Matroska, MP4, M4A and other containers through FFmpeg, services/cli/"
    "audio_reader.py; "
    "any sample rate, resampled to 16 kHz as the ingest does), decided in 20 ms frames and "
    "1 s batches up to the file's last whole frame, then discarded: nothing is stored. A "
    "quiet file, whose speech peaks under -35 dBFS, is lifted by one "
    "constant gain up to that level first, by at most 30 dB (models/vad_level.py; logged at "
    "INFO); the ingest gets no such lift, as a browser's microphone controls its own gain. A "
    "float file whose samples pass full scale is lowered by one gain to fit it, not clipped. "
    "On a terminal, one stderr line shows how far each recording has been read."
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "vad",
        help="voice activity of recorded audio files as wire speech events (JSONL)",
        description=(
            "Print, as wire-v1.1 JSONL on stdout (METRICS.md §9), the speech segments the "
            "WebRTC audio mode would publish for each FILE, one participant per file (or, with "
            "--channels, per channel of each file). Participant ids are the file names' stems "
            "(stem-ch1, stem-ch2... with --channels); times are ms from the start of the "
            "files, which all start at session time 0, in order of their end (the files are "
            "read side by side). By default the speech events are framed "
            "by a session.start (roles: first participant therapist, the others client, or "
            "--roles) and a session.end at the end of the longest file, so the output is a "
            "complete session: rapport vad a.wav b.wav | rapport analyze -. --segments-only "
            "prints the speech events alone (to merge into another session's events). With "
            "several participants, a voice bleeding into another's microphone (two "
            "microphones in one room) is dropped there: see --keep-crosstalk. "
            + VAD_HELP + " Exit status: 0 on success, 2 when a file is missing or not audio "
            "(named on stderr), or an option is wrong."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="audio file (WAV, FLAC, WebM, M4A...)")
    add_audio_options(parser)
    framing = parser.add_mutually_exclusive_group()
    framing.add_argument("--with-session", dest="with_session", action="store_true",
                         default=True,
                         help="frame the speech events with session.start and session.end "
                              "(the default)")
    framing.add_argument("--segments-only", dest="with_session", action="store_false",
                         help="print only the speech events")
    parser.set_defaults(handler=run)


def add_audio_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``rapport vad`` and ``rapport analyze --audio``."""
    parser.add_argument("--backend", "--vad-backend", dest="vad_backend", choices=VAD_BACKENDS,
                        default=None,
                        help="VAD backend: auto (silero if installed, else rapport with a "
                             "WARNING), silero or rapport (default: $RAPPORT_VAD_BACKEND, "
                             "else auto)")
    add_music_gate(parser, "--music-gate", "--vad-music-gate")
    parser.add_argument("--channels", action="store_true",
                        help="one participant per channel of each file (stem-ch1, stem-ch2...) "
                             "instead of one per file with its channels averaged")
    parser.add_argument("--keep-crosstalk", action="store_true",
                        help="with several participants (files, or channels with --channels), "
                             "keep each one's speech as its own VAD decided it; by default a "
                             "frame where one participant's voice only bleeds into another's "
                             "microphone, fainter, is dropped from the latter "
                             "(models/crosstalk.py; INFO logs say what was found)")
    parser.add_argument("--telephone", type=_roles, default=[], metavar="ID,ID...",
                        help="participants who dialled in (ids as printed: a file's stem, "
                             "stem-ch1... with --channels): their audio crossed a telephone "
                             "line, so it is read as narrowband audio whatever the file holds "
                             "(a call recorded after Opus holds the codec's fill above 4 kHz, "
                             "which the file's own check reads as wideband; docs/vad.md, "
                             "'Participants who dial in')")
    parser.add_argument("--roles", type=_roles, default=None, metavar="ROLE,ROLE...",
                        help="roles of the participants in order, e.g. therapist,client "
                             "(default: the first therapist, the others client)")
    parser.add_argument("--session", default=None, metavar="ID",
                        help="session id (default: the first file's stem)")
    parser.add_argument("--clinic", default="local", metavar="ID",
                        help="clinic id of the session.start (default: %(default)s)")


def _roles(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


class Progress:
    """Where a long run is, on one line of ``stream`` rewritten at most every ``every_s``
    seconds (and at each track's end): ``rapport vad: NAME 12:40 of 50:00``. The commands use
    it only while stderr is a terminal, so nothing is added to a log or a pipe."""

    def __init__(self, command: str, stream: TextIO, every_s: float = 1.0) -> None:
        self.command, self.stream, self.every_s = command, stream, every_s
        self._last = -every_s
        self._shown = False

    def __call__(self, track: Track, samples: int) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s and samples < track.frames:
            return
        self._last = now
        self.stream.write(f"\r{self.command}: {track.participant_id} "
                          f"{_clock(samples / track.sample_rate)} of "
                          f"{_clock(track.frames / track.sample_rate)}\x1b[K")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        """Clear the line (what follows on stderr starts clean)."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{rest:02d}" if minutes >= 60 \
        else f"{minutes}:{rest:02d}"


def progress_for(command: str) -> Progress | None:
    """A :class:`Progress` on stderr when stderr is a terminal, else None."""
    return Progress(command, sys.stderr) if sys.stderr.isatty() else None


def audio_events(args: argparse.Namespace, files: list[str], *,
                 with_session: bool = True, progress: Progress | None = None
                 ) -> Iterator[dict[str, Any]]:
    """The session's wire events from ``files`` (see :func:`register`'s description);
    ``progress`` (if any) is told how far each track's VAD has read.

    Raises :class:`~models.errors.ValidationError` (a file that is not audio, a bad role or
    id) or :class:`~models.errors.ConfigError` (the backend cannot load) before the first
    event, except a file that turns out unreadable half-way.
    """
    # Here, not at module level: the audio path (numpy, soundfile, the ingest's framer and
    # VAD) costs about a second to import, which `rapport analyze FILE.jsonl` must not pay.
    from services.cli.audio_files import (
        assign_roles,
        crosstalk_free_events,
        identifier,
        mark_telephone,
        open_tracks,
        session_end,
        session_start,
        speech_events,
    )
    from services.ingest.vad_backend import VadBackend

    tracks = mark_telephone(open_tracks(files, per_channel=args.channels), args.telephone)
    roles = assign_roles(tracks, args.roles)
    session_id = args.session or identifier(Path(files[0]).stem)
    for name, value in (("session", session_id), ("clinic", args.clinic)):
        if value != identifier(value):
            raise ValidationError(name, "must be 1..128 printable ASCII characters, no spaces")
    backend = VadBackend(args.config.vad_backend, music_gate=args.config.vad_music_gate)
    max_segment_ms = args.config.engine.max_segment_ms
    if with_session:
        yield session_start(session_id, args.clinic, tracks, roles)
    # In order of end (the known time, METRICS.md §9), files read side by side: a streaming
    # worker (rapport run --events, analyze --as-stream) would reject a second file's
    # segments as late if they came after the whole first file.
    if len(tracks) > 1 and not args.keep_crosstalk:
        yield from crosstalk_free_events(session_id, tracks, backend, max_segment_ms,
                                         progress)
    else:
        yield from heapq.merge(*(speech_events(session_id, track, backend, max_segment_ms,
                                               progress)
                                 for track in tracks), key=lambda event: int(event["end_ms"]))
    if with_session:
        yield session_end(session_id, tracks)


def run(args: argparse.Namespace) -> int:
    out = sys.stdout.buffer
    progress = progress_for("rapport vad")
    try:
        for event in audio_events(args, args.files, with_session=args.with_session,
                                  progress=progress):
            out.write(orjson.dumps(event) + b"\n")
            if event["type"] != "speech":
                out.flush()
    except (ValidationError, ConfigError) as error:
        out.flush()
        if progress is not None:
            progress.close()
        print(f"rapport vad: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out.flush()
    if progress is not None:
        progress.close()
    return EXIT_OK
