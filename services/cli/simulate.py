"""``rapport simulate``: synthetic sessions as wire-v1 JSONL, for demos, tests and benchmarks."""

from __future__ import annotations

import argparse
import sys
import time
from typing import IO, Any

import orjson

from models.simulation import ENCODINGS, STYLES, SimulationConfig, simulate
from models.simulation_shapes import SHAPES
from services.cli.arguments import bounded_int, positive_float, probability

_DEFAULTS = SimulationConfig()
# Lines are joined and written in blocks: one write() per event would dominate the runtime.
_WRITE_BLOCK = 2000

_EPILOG = """\
styles:
  balanced          therapist and client talk about equally
  therapist-heavy   the therapist holds about 70 % of the talk time
  client-narrative  the client holds about 70 % (long narratives, many backchannels)
  interruptive      frequent interruptions, mostly therapist -> client
  laggy             RTT 250-700 ms, more loss: later responses and more collisions
  group             therapist and 2-3 clients; sometimes a client joins late
  mixed             each session picks one of the styles above

examples:
  rapport simulate --minutes 50 --style therapist-heavy -o session.jsonl
  rapport simulate --sessions 200 --style mixed --jitter-ms 300 --duplicate-rate 0.01 \\
      | rapport analyze -
  rapport simulate --encoding levels --frame-ms 10 --seed 7 | head

The model and its parameters are documented in docs/simulator.md.
"""




def _prefix(text: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError("must be non-empty and contain no whitespace")
    return text


def register(subparsers: Any) -> None:
    """Add the ``simulate`` subcommand to the ``rapport`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="generate synthetic therapy sessions as wire-v1 JSONL events",
        description=(
            "Generate synthetic telehealth therapy sessions (voice activity, network samples, "
            "mutes, joins) as wire-format v1 events, one JSON object per line, in delivery-time "
            "order. Deterministic: the same options and seed give identical output."
        ),
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = _DEFAULTS
    parser.add_argument("--sessions", type=bounded_int(1), default=d.sessions, metavar="N",
                        help="number of sessions, merged in one stream (default: %(default)s)")
    parser.add_argument("--minutes", type=positive_float, default=d.minutes, metavar="M",
                        help="length of each session in minutes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=d.seed,
                        help="random seed; same seed, same output (default: %(default)s)")
    parser.add_argument("--style", choices=STYLES, default=d.style,
                        help="conversation style, see below (default: %(default)s)")
    parser.add_argument("--encoding", choices=ENCODINGS, default=d.encoding,
                        help="voice activity as 'voiced' frame flags, 'levels' (-dBov per "
                             "frame) or 'speech' segments (default: %(default)s)")
    parser.add_argument("--shape", choices=SHAPES, default=d.shape,
                        help="what each participant's platform sends (METRICS.md §1): "
                             "'frames' (as --encoding), 'segments' (whole, each sent when it "
                             "ends), 'voice' (speaking-state changes), 'levels' (samples every "
                             "50-250 ms in a random one of the six scales), or 'mixed' (one of "
                             "these per participant) (default: %(default)s)")
    parser.add_argument("--frame-ms", type=int, choices=(10, 20, 30), default=d.frame_ms,
                        help="VAD frame length in ms (default: %(default)s)")
    parser.add_argument("--batch-ms", type=bounded_int(1), default=d.batch_ms, metavar="MS",
                        help="length of one activity batch in ms, a multiple of --frame-ms "
                             "(default: %(default)s)")
    parser.add_argument("--network-interval-ms", type=bounded_int(1),
                        default=d.network_interval_ms, metavar="MS",
                        help="interval between network samples per participant "
                             "(default: %(default)s)")
    parser.add_argument("--jitter-ms", type=bounded_int(0), default=d.jitter_ms, metavar="MS",
                        help="delay each event's delivery by uniform [0, MS] ms, reordering "
                             "the stream (default: %(default)s)")
    parser.add_argument("--duplicate-rate", type=probability, default=d.duplicate_rate,
                        metavar="P",
                        help="probability that an event is delivered twice (default: "
                             "%(default)s)")
    parser.add_argument("--session-stagger-ms", type=bounded_int(0),
                        default=d.session_stagger_ms, metavar="MS",
                        help="sessions start at random offsets in [0, MS) (default: "
                             "%(default)s)")
    parser.add_argument("--session-id-prefix", type=_prefix, default=d.session_id_prefix,
                        metavar="TEXT",
                        help="session ids are TEXT-0001, TEXT-0002, ... (default: %(default)s)")
    parser.add_argument("-o", "--output", default="-", metavar="FILE",
                        help="write JSONL to FILE; '-' is stdout (default: %(default)s)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write the simulated events; returns the exit code (2 on invalid option combinations)."""
    try:
        config = SimulationConfig(
            sessions=args.sessions,
            minutes=args.minutes,
            seed=args.seed,
            style=args.style,
            encoding=args.encoding,
            shape=args.shape,
            frame_ms=args.frame_ms,
            batch_ms=args.batch_ms,
            network_interval_ms=args.network_interval_ms,
            jitter_ms=args.jitter_ms,
            duplicate_rate=args.duplicate_rate,
            session_stagger_ms=args.session_stagger_ms,
            session_id_prefix=args.session_id_prefix,
        )
    except ValueError as exc:
        print(f"rapport simulate: error: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    if args.output == "-":
        write(config, sys.stdout.buffer)
        sys.stdout.flush()
        return 0
    try:
        with open(args.output, "wb") as out:
            count = write(config, out)
    except OSError as exc:
        print(f"rapport simulate: error: cannot write {args.output}: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - started
    print(
        f"rapport simulate: {config.sessions} sessions, {count} events, {elapsed:.2f} s "
        f"-> {args.output}",
        file=sys.stderr,
    )
    return 0


def write(config: SimulationConfig, out: IO[bytes]) -> int:
    """Write the events of ``config`` to ``out`` as JSONL; returns the number of events."""
    dumps = orjson.dumps
    block: list[bytes] = []
    count = 0
    for event in simulate(config):
        block.append(dumps(event))
        if len(block) >= _WRITE_BLOCK:
            count += len(block)
            out.write(b"\n".join(block) + b"\n")
            block.clear()
    if block:
        count += len(block)
        out.write(b"\n".join(block) + b"\n")
    return count
