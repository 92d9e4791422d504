"""``rapport run``: the whole pipeline on one machine — the main job.

Starts the embedded broker (topics pre-created; or uses a real Kafka cluster given with
``--broker``, creating missing topics), one or more ``rapport worker`` processes, and
feeds the events topic from a JSONL file or from the simulator, with backpressure; prints live
progress on stderr and writes each final report as one JSON line (METRICS.md §10).
"""

from __future__ import annotations

import argparse
from typing import Any

from models.topics import DEFAULT_PARTITIONS
from services.cli.ingest import add_cors_origin, add_vad_backend


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the whole pipeline here: embedded broker, workers, a feed, the reports",
        description=(
            "The main job on one machine: start the embedded Kafka-protocol broker, "
            "--workers worker processes, and publish events into rapport.events, from "
            "--events FILE (JSONL; malformed lines end up on the dead-letter topic) or from "
            "the simulator. Progress goes to stderr every few seconds; each final report is "
            "written to --reports as one JSON line. With --exit-when-done it exits 0 once "
            "every session of the input has its report. The embedded broker is for one "
            "machine and holds about 5 MiB per partition: use real Kafka to keep data "
            "(--broker)."
        ),
    )
    parser.add_argument("--broker", default=None, metavar="BOOTSTRAP",
                        help="use this Kafka cluster instead of starting the embedded broker: "
                             "HOST:PORT[,HOST:PORT...] as `rapport kafka` prints it "
                             "(kafka:// allowed); missing topics are created with --partitions "
                             "and the cluster's default replication (default: the embedded "
                             "broker)")
    source = parser.add_argument_group("input (default: simulated sessions)")
    source.add_argument("--events", metavar="FILE",
                        help="JSONL file of wire-v1 events, or - for standard input")
    source.add_argument("--sessions", type=int, default=3, metavar="N",
                        help="simulated sessions; 0 simulates none (with --port: events "
                             "come only through the ingest API) (default: %(default)s)")
    source.add_argument("--minutes", type=float, default=10.0, metavar="M",
                        help="length of each simulated session (default: %(default)s)")
    source.add_argument("--seed", type=int, default=1, help="simulation seed (default: 1)")
    source.add_argument("--style", default="mixed",
                        help="simulated conversation style (default: %(default)s)")
    source.add_argument("--speed", type=float, default=0.0, metavar="X",
                        help="pace the simulation at X times real time; 0 publishes as fast "
                             "as the workers keep up (default: %(default)s)")
    parser.add_argument("--reports", default="-", metavar="FILE",
                        help="write final reports here as JSONL; - is stdout "
                             "(default: %(default)s)")
    parser.add_argument("--summary", action="store_true",
                        help="also print each report as a readable table on stdout")
    parser.add_argument("--dead-letters", default=None, metavar="FILE",
                        help="also write every dead-letter record (rejected input with the "
                             "field and reason) to FILE as JSONL")
    parser.add_argument("--exit-when-done", action="store_true",
                        help="exit once every session in the input has its final report")
    parser.add_argument("--port", type=int, default=None, metavar="PORT",
                        help="also serve, on this one port, the ingest API and join page, the "
                             "report API, pages and live dashboard (filled by the report "
                             "store consumer), /healthz, /readyz and /metrics for the whole "
                             "job; prints the URL and an admin token (default: no web server)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address of the --port server (default: %(default)s)")
    add_vad_backend(parser)  # audio mode of the --port server's WebRTC ingest
    add_cors_origin(parser)  # pages allowed to use the --port server's SDK routes
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="worker processes in the consumer group (default: %(default)s)")
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS, metavar="N",
                        help="partitions per topic (default: %(default)s)")
    parser.add_argument("--idle-timeout-s", type=float, default=None, metavar="S",
                        help="close sessions without session.end after S seconds without "
                             "events (default: idle_timeout_s, 300)")
    parser.add_argument("--end-grace-ms", type=int, default=None, metavar="MS",
                        help="wait after session.end for late events (default: 5000)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # The job's imports (aiohttp, Kafka clients, the store, the web app) load only here.
    from services.cli.job import run as run_job

    return run_job(args)
