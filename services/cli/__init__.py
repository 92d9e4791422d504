"""The ``rapport`` command: one entry point, one subcommand per job.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds
its parser and sets ``handler`` to a function ``(args) -> int`` (the exit code).
Logging is configured here and only here (entry point), per the house style.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from models.errors import ConfigError
from services import logs
from services.cli import analyze as analyze
from services.cli import broker as broker
from services.cli import directory as directory
from services.cli import ingest as ingest
from services.cli import kafka as kafka
from services.cli import purge as purge
from services.cli import reports as reports
from services.cli import run as run
from services.cli import simulate as simulate
from services.cli import tokens as tokens
from services.cli import vad as vad
from services.cli import worker as worker
from services.settings import load_settings

_SUBCOMMANDS = (run, analyze, vad, simulate, broker, kafka, worker, tokens, reports, ingest,
                directory, purge)  # issue 19: directory, consent, policy, erase; purge


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rapport",
        description=(
            "Rapport: turn-taking, talk-time balance and interruption metrics for telehealth "
            "therapy sessions, from voice activity only (see docs/metrics.md)."
        ),
    )
    parser.add_argument(
        "--log-level",
        default=None,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging threshold for messages on stderr (default: $RAPPORT_LOG_LEVEL or WARNING)",
    )
    parser.add_argument(
        "--log-format",
        default=None,
        choices=list(logs.FORMATS),
        help="log lines on stderr: text (readable) or json (one object per line, for log "
             "collectors) (default: $RAPPORT_LOG_FORMAT or text; docs/operations.md)",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help=(
            "override an engine threshold or alert setting, e.g. --set min_pause_ms=250 "
            "--set alerts.silence_ms=60000 (beats the RAPPORT_* environment; "
            "see docs/configuration.md)"
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.config = load_settings(overrides=args.settings, log_level=args.log_level,
                                    vad_backend=getattr(args, "vad_backend", None),
                                    vad_music_gate=getattr(args, "vad_music_gate", None))
    except ConfigError as error:
        parser.error(str(error))
    try:
        log_format = logs.resolve_format(args.log_format)
    except ConfigError as error:
        parser.error(str(error))
    if args.log_format:  # processes this one starts (rapport run's workers) log the same way
        os.environ[logs.ENV_FORMAT] = log_format
    logs.configure(args.config.log_level, log_format)
    handler = args.handler
    try:
        return int(handler(args))
    except ConfigError as error:
        # A setting only found wrong while running (a --port already in use): one line, exit 2.
        print(f"rapport {args.command}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `rapport analyze big.jsonl | head` must not print a traceback.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
