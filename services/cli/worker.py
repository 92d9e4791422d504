"""``rapport worker``: run one streaming worker (Faust) until interrupted."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import tempfile
from typing import Any

from models.config import PipelineConfig
from services.broker import embedded_bootstrap
from services.cli.arguments import bounded_int, non_negative_float, positive_float
from streams.broker_probe import bootstrap_servers, faust_broker

log = logging.getLogger(__name__)

DEFAULT_BROKER = "kafka://localhost:9092"
EMBEDDED_FETCH_WAIT_MS = 10
KAFKA_FETCH_WAIT_MS = 500  # streams/kafka.py, point 1: Faust's 1,500 ms doubled latency
EMBEDDED_FETCH_INTERVAL_MS = 20  # streams/kafka.py, point 6


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run a streaming worker: events in, quality/alerts/reports out",
        description=(
            "Consume wire-v1 events from the events topic, keep per-session state in a "
            "changelog-backed table and publish quality updates, alerts, final reports and "
            "dead letters (docs/streaming.md). Workers sharing an --app-id form one consumer "
            "group and split the partitions. Stops cleanly on Ctrl-C or SIGTERM."
        ),
    )
    parser.add_argument(
        "--broker", default=None, metavar="URL",
        help="Kafka bootstrap: kafka://host:9092, or host:9092,host2:9092 as `rapport kafka` "
             "prints it (default: $RAPPORT_BROKER, else the "
             "embedded broker started by `rapport run`/`rapport broker` if one is up, else "
             f"{DEFAULT_BROKER})")
    parser.add_argument(
        "--broker-kind", choices=["auto", "embedded", "kafka"], default="auto",
        help="the broker is the embedded one (librdkafka's mock cluster: the settings and "
             "overrides for its quirks apply, docs/streaming.md) or Apache Kafka (default: "
             "auto = embedded if --broker is the embedded broker `rapport run`/`rapport "
             "broker` started)")
    parser.add_argument("--app-id", default=None,
                        help="consumer group and table namespace (default: rapport)")
    parser.add_argument("--partitions", type=int, default=None, metavar="N",
                        help="partitions of every topic (default: 8)")
    parser.add_argument(
        "--declare-topics", choices=["auto", "yes", "no"], default="auto",
        help="create missing topics (default: auto = no on the embedded broker, whose "
             "topics are pre-created, yes elsewhere)")
    parser.add_argument("--store", default="memory://",
                        help="table store: memory:// or rocksdb:// (default: %(default)s)")
    parser.add_argument("--data-dir", default=None, metavar="DIR",
                        help="Faust state directory (RocksDB files); default: a temporary "
                             "directory removed at exit with the memory store, else "
                             "./rapport-worker-data")
    parser.add_argument("--web-port", type=int, default=None, metavar="PORT",
                        help="serve /healthz, /readyz and /metrics on PORT (default: no web "
                             "server)")
    parser.add_argument("--web-host", default="127.0.0.1", metavar="HOST",
                        help="address the web server binds (default: %(default)s; 0.0.0.0 "
                             "in containers)")
    parser.add_argument("--batch-max", type=int, default=2000, metavar="N",
                        help="records per micro-batch at most (default: %(default)s)")
    parser.add_argument("--stream-buffer", type=bounded_int(1), default=16_384, metavar="N",
                        help="records the worker's stream may hold before Faust pauses their "
                             "partitions in the fetch; a smaller buffer than one fetch brings "
                             "makes a worker that catches up stall (default: %(default)s)")
    parser.add_argument("--batch-window-ms", type=int, default=50, metavar="MS",
                        help="process a partial batch after this long (default: %(default)s)")
    parser.add_argument("--idle-timeout-s", type=float, default=None, metavar="S",
                        help="close a session after this long without events (default: the "
                             "engine's idle_timeout_s, 300)")
    parser.add_argument("--end-grace-ms", type=int, default=None, metavar="MS",
                        help="wait this long after session.end for late events (default: "
                             "5000)")
    parser.add_argument("--fetch-max-wait-ms", type=int, default=None, metavar="MS",
                        help="longest a fetch may wait for data (default: 10 on the embedded "
                             "broker, which holds every fetch this long; else 500: a partition "
                             "drained meanwhile waits for the fetch in flight, and Faust's "
                             "own 1500 doubled update latency on Kafka)")
    parser.add_argument("--fetch-min-interval-ms", type=bounded_int(0), default=None, metavar="MS",
                        help="least time between two fetches from one broker (default: "
                             f"{EMBEDDED_FETCH_INTERVAL_MS} on the embedded broker, which "
                             "returns one producer batch per partition per fetch, else 0)")
    parser.add_argument("--commit-interval-s", type=positive_float, default=2.0, metavar="S",
                        help="commit offsets every S seconds, up to the oldest session "
                             "change not yet checkpointed (default: %(default)s)")
    parser.add_argument("--checkpoint-interval-s", type=positive_float, default=10.0, metavar="S",
                        help="write each changed session's state to the table about once "
                             "per S seconds, spread evenly; committed offsets lag by about "
                             "that much, so longer means less work, more replay after a "
                             "crash (default: %(default)s)")
    parser.add_argument("--full-gc-interval-s", type=non_negative_float, default=300.0, metavar="S",
                        help="run Python's full garbage collection every S seconds instead of "
                             "when allocations say (each pauses the worker ~0.25 s at 2,000 "
                             "sessions; docs/streaming.md); 0 keeps Python's own schedule "
                             "(default: %(default)s)")
    parser.add_argument("--session-timeout-s", type=float, default=10.0, metavar="S",
                        help="a worker that stops heartbeating loses its partitions to the "
                             "others after S seconds (default: %(default)s)")
    parser.add_argument("--recovery-stall-s", type=non_negative_float, default=30.0,
                        metavar="S",
                        help="during a table recovery, a changelog partition still behind "
                             "that has applied nothing for S seconds is fetched again "
                             "(docs/streaming.md, \"Recovery stalls\"); 0 never does "
                             "(default: %(default)s)")
    parser.set_defaults(handler=run)


def resolve_broker(explicit: str | None) -> tuple[str, bool]:
    """(broker URL, whether it is the embedded broker)."""
    if explicit:
        url = explicit
    elif os.environ.get("RAPPORT_BROKER"):
        url = os.environ["RAPPORT_BROKER"]
    else:
        embedded = embedded_bootstrap()
        url = f"kafka://{embedded}" if embedded else DEFAULT_BROKER
    url = faust_broker(url)  # a bootstrap list as `rapport kafka` prints it works too
    embedded = embedded_bootstrap()
    return url, bool(embedded) and bootstrap_servers(url) == embedded


def run(args: argparse.Namespace) -> int:
    from models.topics import DEFAULT_APP_ID, DEFAULT_PARTITIONS
    from streams.app import WorkerConfig, build_app  # Faust is heavy: import when needed

    broker, detected = resolve_broker(args.broker)
    embedded = {"auto": detected, "embedded": True, "kafka": False}[args.broker_kind]
    engine = args.config.engine
    pipeline = PipelineConfig(
        idle_timeout_ms=int((args.idle_timeout_s if args.idle_timeout_s is not None
                             else engine.idle_timeout_s) * 1000),
        end_grace_ms=args.end_grace_ms if args.end_grace_ms is not None else 5_000,
    )
    declare = {"yes": True, "no": False, "auto": not embedded}[args.declare_topics]
    config = WorkerConfig(
        broker=broker,
        security=args.config.kafka,
        app_id=args.app_id or DEFAULT_APP_ID,
        partitions=args.partitions or DEFAULT_PARTITIONS,
        declare_topics=declare,
        embedded_broker=embedded,
        store=args.store,
        web_port=args.web_port,
        web_host=args.web_host,
        batch_max=args.batch_max,
        stream_buffer_max=args.stream_buffer,
        batch_window_s=args.batch_window_ms / 1000,
        fetch_max_wait_ms=args.fetch_max_wait_ms if args.fetch_max_wait_ms is not None
        else EMBEDDED_FETCH_WAIT_MS if embedded else KAFKA_FETCH_WAIT_MS,
        fetch_min_interval_ms=args.fetch_min_interval_ms
        if args.fetch_min_interval_ms is not None
        else EMBEDDED_FETCH_INTERVAL_MS if embedded else 0,
        session_timeout_s=args.session_timeout_s,
        commit_interval_s=args.commit_interval_s,
        checkpoint_interval_s=args.checkpoint_interval_s,
        full_gc_interval_s=args.full_gc_interval_s or None,
        recovery_stall_s=args.recovery_stall_s,
        engine=engine,
        pipeline=pipeline,
        failpoint=args.config.failpoint,
    )
    temporary = None
    if args.data_dir is None and args.store.startswith("memory"):
        temporary = tempfile.TemporaryDirectory(prefix="rapport-worker-")
    data_dir = args.data_dir or (temporary.name if temporary else "rapport-worker-data")
    config = dataclasses.replace(config, data_dir=data_dir)
    app, _ = build_app(config)
    log.info("worker starting: broker %s, group %s, %d partitions%s", broker, config.app_id,
             config.partitions, " (embedded broker)" if embedded else "")
    import faust

    worker = faust.Worker(app, loglevel=logging.getLogger().level or logging.WARNING,
                          quiet=True, override_logging=False, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()  # runs until a signal, then exits the process
    finally:
        if temporary is not None:
            temporary.cleanup()
    return 0  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.exit(1)
