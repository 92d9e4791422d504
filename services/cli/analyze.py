"""``rapport analyze``: offline analysis of a JSONL file of wire-v1 events."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson

from models.analyzer import Analyzer
from models.config import EngineConfig
from models.errors import ValidationError
from models.events import decode_json, parse_event
from services.cli.summary import format_summary

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_NOTHING_VALID = 1
EXIT_UNREADABLE = 2


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="analyze a JSONL file of wire events, one report per session",
        description=(
            "Read wire-v1 events (METRICS.md §9; any number of sessions, interleaved) and print "
            "one final report per session, in order of first appearance. Events are taken in "
            "file order, exactly as the streaming workers take them: an event more than "
            "allowed_lateness_ms behind its session's newest event is rejected as late. "
            "Invalid lines are reported on stderr with line number and reason and counted; "
            "the rest is still analyzed. Exit status: 0 when the input was usable (even with "
            "rejected lines), 1 when nothing valid was found, 2 when the file cannot be read."
        ),
    )
    parser.add_argument("file", help="JSONL file of wire events, or - for standard input")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print each report as one compact JSON object per line (METRICS.md §10 schema)",
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
    try:
        stream: IO[bytes] = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as error:
        print(f"rapport analyze: cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return EXIT_UNREADABLE
    with stream:
        analyzer, lines = analyze_lines(stream, args.config.engine)
        reports = list(analyzer.finish_all())
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
    lines: Iterable[bytes], config: EngineConfig | None = None
) -> tuple[Analyzer, int]:
    """Feed JSONL lines to a fresh :class:`Analyzer`; blank lines are skipped."""
    analyzer = Analyzer(config)
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
