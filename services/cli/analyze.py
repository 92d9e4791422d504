"""``rapport analyze``: offline analysis of a JSONL file of wire-v1 events, or (``--audio``)
of per-participant recordings through the ingest's audio mode (services/cli/audio_files.py)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson

from models.analyzer import Analyzer, Ordering
from models.config import EngineConfig
from models.errors import ConfigError, ValidationError
from models.events import decode_json, parse_event
from services.cli.summary import format_summary
from services.cli.vad import VAD_HELP, add_audio_options, audio_events, progress_for

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_NOTHING_VALID = 1
EXIT_UNREADABLE = 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="analyze a JSONL file of wire events, one report per session",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Read wire events (METRICS.md §9; any number of sessions, interleaved) and print
one final report per session, in order of first appearance; or, with --audio,
analyze recordings (research use).

  rapport analyze events.jsonl
  rapport analyze --json - < events.jsonl
  rapport analyze --audio therapist.wav client.flac

The file is read as a whole: its order does not matter (per-participant or
per-session blocks, shuffled, duplicated lines), nothing is late, and each
report is the one the streaming pipeline publishes for the same accepted
events. Every event is held until the end of the input: about 400 bytes each
(a 50-minute session sent as segments or as 1 s frame batches holds about
2 MB). --as-stream takes the events in file order instead, exactly as a
streaming worker takes its partition (an event arriving more than
allowed_lateness_ms late is rejected), in bounded memory. Invalid lines are
reported on stderr with line number and reason and counted; the rest is still
analyzed.

--audio FILE... analyzes recordings instead: one participant per file (the
first therapist, the others client, unless --roles), or one per channel of
each file with --channels; the same events as rapport vad FILE... | rapport
analyze -, without the intermediate file. A voice bleeding into another
participant's microphone (two microphones in one room) is dropped there unless
--keep-crosstalk.

""" + VAD_HELP + """

Exit status: 0 when the input was usable (even with rejected lines), 1 when
nothing valid was found, 2 when the file cannot be read.""",
    )
    parser.add_argument("file", nargs="?",
                        help="JSONL file of wire events, or - for standard input")
    parser.add_argument("--audio", nargs="+", metavar="FILE", default=None,
                        help="analyze these audio files (WAV, FLAC, WebM, M4A...) instead of "
                             "events: one participant per file, e.g. --audio therapist.wav "
                             "client.wav")
    add_audio_options(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print each report as one compact JSON object per line (METRICS.md §10 schema)",
    )
    parser.add_argument(
        "--as-stream",
        action="store_true",
        help="take events in file order with the lateness bound, as a streaming worker does "
        "(for debugging what the pipeline would reject as late)",
    )
    parser.add_argument(
        "--max-errors",
        type=int,
        default=50,
        metavar="N",
        help="print at most N rejected lines on stderr; all are counted (default: %(default)s)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    ordering: Ordering = "stream" if args.as_stream else "whole"
    if (args.file is None) == (args.audio is None):
        print("rapport analyze: give either a JSONL FILE or --audio FILE...", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.audio is not None:
        progress = progress_for("rapport analyze")
        try:
            events = (orjson.dumps(e) for e in audio_events(args, args.audio,
                                                            progress=progress))
            analyzer, lines = analyze_lines(events, args.config.engine, ordering=ordering)
        except (ValidationError, ConfigError) as error:
            print(f"rapport analyze: {error}", file=sys.stderr)
            return EXIT_UNREADABLE
        finally:
            if progress is not None:
                progress.close()
        reports = list(analyzer.finish_all())
        return _print_reports(args, analyzer, reports, lines, started)
    try:
        stream: IO[bytes] = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as error:
        print(f"rapport analyze: cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return EXIT_UNREADABLE
    with stream:
        analyzer, lines = analyze_lines(stream, args.config.engine, ordering=ordering)
        reports = list(analyzer.finish_all())
    return _print_reports(args, analyzer, reports, lines, started)


def _print_reports(args: argparse.Namespace, analyzer: Analyzer, reports: list[Any],
                   lines: int, started: float) -> int:
    out = sys.stdout
    if args.json:
        out.buffer.write(b"".join(orjson.dumps(r) + b"\n" for r in reports))
        out.flush()
    else:
        for report in reports:
            out.write(format_summary(report))
            out.write("\n")
    problems = analyzer.problems
    for problem in problems[: args.max_errors]:
        print(f"rejected: {problem}", file=sys.stderr)
    rejected = analyzer.problem_count
    if rejected > args.max_errors:
        print(f"... and {rejected - args.max_errors} more rejected", file=sys.stderr)
    elapsed = time.perf_counter() - started
    log.info("analyzed %d lines in %.3f s", lines, elapsed)
    print(
        f"rapport analyze: {lines} lines, {analyzer.accepted} events accepted, "
        f"{analyzer.duplicates} duplicates, {rejected} rejected, "
        f"{len(reports)} session reports",
        file=sys.stderr,
    )
    return EXIT_OK if reports else EXIT_NOTHING_VALID


def analyze_lines(
    lines: Iterable[bytes], config: EngineConfig | None = None, *, ordering: Ordering = "whole"
) -> tuple[Analyzer, int]:
    """Feed JSONL lines to a fresh :class:`Analyzer` (``whole``: the file as a whole, in any
    order; ``stream``: in line order as a worker would); blank lines are skipped."""
    analyzer = Analyzer(config, ordering=ordering)
    count = 0
    for count, event_or_error, session_id in _numbered_events(lines):
        if isinstance(event_or_error, ValidationError):
            analyzer.reject(count, event_or_error, session_id)
        else:
            analyzer.feed(event_or_error, count)
    return analyzer, count


def _numbered_events(lines: Iterable[bytes]) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, event or the error rejecting it, session id when the line names one)."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = decode_json(line)
        except ValidationError as error:
            yield number, error, None
            continue
        try:
            yield number, parse_event(value), None
        except ValidationError as error:
            session_id = value.get("session_id") if isinstance(value, dict) else None
            yield number, error, session_id if isinstance(session_id, str) else None
