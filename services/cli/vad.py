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

# The help is laid out by hand (RawDescriptionHelpFormatter): a short lead, examples, then
# one block per subject, each naming the module or doc that says more.
VAD_HELP = """\
VAD (--backend; default $RAPPORT_VAD_BACKEND, else auto), that of the WebRTC
ingest's audio mode (docs/ingest.md):
  auto     silero when its extra is installed, else rapport with a WARNING
  silero   the Silero VAD ONNX model (silero-vad wheel, run by onnxruntime)
           deciding with Rapport's rule and head over its state, probability
           and band levels; its state restarts at pauses, so that it cannot
           stay deaf over a long stream. Telephone audio (a file at 8 kHz or
           less, one whose first minute holds nothing above 4 kHz, or a
           participant named by --telephone) also runs the model's 8 kHz
           network (models/vad_silero.py; docs/vad.md).
           Needs pip install 'rapport[silero]' && pip install --no-deps
           silero-vad (make setup does); exit 2 when it is missing.
  rapport  Rapport's own VAD (models/vad.py: spectral noise floor and band
           SNR), always available; the less accurate on real speech.

Audio: WAV, FLAC or any format libsndfile reads; WebM, Matroska, MP4, M4A and
other containers through FFmpeg (services/cli/audio_reader.py); any sample
rate, resampled to 16 kHz as the ingest does; decided in 20 ms frames and 1 s
batches up to the file's last whole frame. Read in blocks, never stored. A
quiet file (speech peaking under -35 dBFS) is lifted by one constant gain, at
most 30 dB (models/vad_level.py; logged at INFO); a float file past full
scale is lowered to fit, not clipped. On a terminal, one stderr line shows how
far each recording has been read."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "vad",
        help="voice activity of recorded audio files as wire speech events (JSONL)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Print the speech segments the WebRTC ingest's audio mode would publish for each
FILE, as wire-v1.1 JSONL on stdout (METRICS.md §9): one participant per file,
or per channel of each file with --channels.

  rapport vad therapist.wav client.flac > events.jsonl
  rapport vad --channels session.flac | rapport analyze -

Participant ids are the files' stems (stem-ch1, stem-ch2... with --channels).
Times are ms from the start of the files, which all start at session time 0;
the files are read side by side and segments printed in order of their end.
By default a session.start (roles: the first participant therapist, the others
client, or --roles) and a session.end at the end of the longest file frame
them, so the output is a complete session; --segments-only prints the speech
events alone. With several participants, a voice bleeding into another's
microphone (two microphones in one room) is dropped there: see
--keep-crosstalk.

""" + VAD_HELP + """

Exit status: 0 on success, 2 when a file is missing or not audio (named on
stderr), or an option is wrong.""",
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
