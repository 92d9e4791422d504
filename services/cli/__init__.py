"""The ``rapport`` command: one entry point, one subcommand per job.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds
its parser and sets ``handler`` to a function ``(args) -> int`` (the exit code).
Logging is configured here and only here (entry point), per the house style.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from services.cli import analyze as analyze
from services.cli import simulate as simulate

_SUBCOMMANDS = (analyze, simulate)


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
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging threshold for messages on stderr (default: %(default)s)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler = args.handler
    try:
        return int(handler(args))
    except BrokenPipeError:
        # `rapport analyze big.jsonl | head` must not print a traceback.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
