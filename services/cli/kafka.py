"""``rapport kafka``: a local Apache Kafka cluster (KRaft) with Rapport's topics, until
interrupted. The jars come from ``make kafka`` (deploy/kafka/pom.xml)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from models.topics import DEFAULT_PARTITIONS
from services.cli.arguments import bounded_int, positive_float

WATCH_EVERY_S = 1.0
INTERRUPTED = "interrupted while starting"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "kafka",
        help="run a local Apache Kafka cluster (KRaft) with Rapport's topics",
        description=(
            "Start --brokers Apache Kafka nodes on 127.0.0.1 (the first three are also the "
            "controller quorum), with their data and logs under --data; create every "
            "Rapport topic with replication factor min(3, N) and min.insync.replicas "
            "min(2, N); print one line 'broker ID pid PID port PORT' per node, then "
            "'bootstrap: HOST:PORT,...' (pass it to --broker of the other commands); stay "
            "up until Ctrl-C or SIGTERM, then stop the nodes. Needs Java 17+ and the jars "
            "of `make kafka`."
        ),
    )
    parser.add_argument("--brokers", type=bounded_int(1), default=1, metavar="N",
                        help="Kafka nodes (default: %(default)s)")
    parser.add_argument("--data", required=True, metavar="DIR",
                        help="data and log directory (one node-ID folder per node, each with "
                             "server.log); starting again on the same DIR keeps the data")
    parser.add_argument("--partitions", type=bounded_int(1), default=DEFAULT_PARTITIONS,
                        metavar="P", help="partitions per topic (default: %(default)s)")
    parser.add_argument("--secure", action="store_true",
                        help="clients connect over TLS with a SASL/PLAIN password, as to a "
                             "managed Kafka: a certificate authority, the brokers' certificate "
                             "and a password are made once under DIR/tls; prints the "
                             "RAPPORT_KAFKA_* lines the other commands need (also in "
                             "DIR/tls/client.env)")
    parser.add_argument("--start-timeout-s", type=positive_float, default=120.0, metavar="S",
                        help="give up if the cluster does not answer within S seconds "
                             "(default: %(default)s)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from services.kafka_admin import (
        KafkaAdminError,
        ensure_topics,
        rapport_topics,
        wait_for_brokers,
    )
    from services.kafka_cluster import KafkaCluster, KafkaClusterError

    try:
        cluster = KafkaCluster(args.brokers, Path(args.data), secure=args.secure)
    except KafkaClusterError as error:
        print(f"rapport kafka: {error}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        started = time.monotonic()
        bootstrap = cluster.start()
        # Through the clients' listener, with the clients' settings: --secure proves its
        # TLS and password work before it says it is ready.
        security = cluster.secure.client_security() if cluster.secure else None
        wait_for_brokers(bootstrap, args.brokers, args.start_timeout_s,
                         lambda: INTERRUPTED if stop.is_set() else cluster.exited(),
                         security=security)
        created = ensure_topics(bootstrap, rapport_topics(
            args.partitions, min(3, args.brokers), min(2, args.brokers)),
            security=security)
        print(f"rapport kafka: {args.brokers} broker(s) up in "
              f"{time.monotonic() - started:.1f} s; topics created: "
              f"{', '.join(created) or 'none (all present)'}; logs in {cluster.data}",
              file=sys.stderr)
        for running in cluster.nodes:
            print(f"broker {running.node.node_id} pid {running.pid} port {running.node.port}")
        if cluster.secure is not None:
            for name, value in cluster.secure.environment().items():
                print(f"{name}={value}")
        # Last on stdout, for scripts: the cluster is ready once this line is out.
        print(f"bootstrap: {bootstrap}", flush=True)
        reported: set[int] = set()
        while not stop.wait(WATCH_EVERY_S):
            for running in cluster.nodes:  # a node killed on purpose (failure tests) or not
                code = running.process.poll()
                if code is not None and running.node.node_id not in reported:
                    reported.add(running.node.node_id)
                    print(f"rapport kafka: broker {running.node.node_id} (pid {running.pid}) "
                          f"exited with status {code}", file=sys.stderr, flush=True)
    except (KafkaClusterError, KafkaAdminError) as error:
        if stop.is_set():  # Ctrl-C while starting: not a failure
            return 0
        print(f"rapport kafka: {error}", file=sys.stderr)
        return 1
    finally:
        cluster.stop()
    return 0
