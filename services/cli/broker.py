"""``rapport broker``: run the embedded Kafka-protocol broker until interrupted."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from models.topics import DEFAULT_PARTITIONS, Topics
from services.broker import BrokerError, EmbeddedBroker, announce, withdraw


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "broker",
        help="run the embedded Kafka-protocol broker (librdkafka's mock cluster)",
        description=(
            "Start librdkafka's mock cluster (shipped in the confluent-kafka wheel) on "
            "127.0.0.1, create every Rapport topic with its partition count, print the "
            "bootstrap address and stay up until interrupted (Ctrl-C, SIGTERM). For one "
            "machine only: it keeps about 5 MiB per partition and silently drops older data."
        ),
    )
    parser.add_argument("--brokers", type=int, default=1, metavar="N",
                        help="number of mock brokers (default: %(default)s)")
    parser.add_argument("--partitions", type=int, default=DEFAULT_PARTITIONS, metavar="N",
                        help="partitions per topic (default: %(default)s)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.partitions < 1 or args.brokers < 1:
        print("rapport broker: --partitions and --brokers must be >= 1", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        with EmbeddedBroker(args.brokers) as broker:
            specs = Topics().specs(args.partitions)
            broker.create_topics(specs)
            print(f"topics: {', '.join(f'{t.name} ({t.partitions})' for t in specs)}",
                  file=sys.stderr)
            # `rapport worker` finds it there; the address goes last on stdout for scripts.
            announce(broker.bootstrap)
            print(f"bootstrap: {broker.bootstrap}", flush=True)
            try:
                stop.wait()
            finally:
                withdraw()
    except BrokerError as error:
        print(f"rapport broker: {error}", file=sys.stderr)
        return 1
    return 0
