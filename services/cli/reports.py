"""``rapport reports``: serve the report API and pages (issue 5; services/reports) until
interrupted.

Prints ``reports: http://HOST:PORT`` as the last line of standard output once listening
(``--port 0`` picks a free port). Uses the database of ``--db-url``, else ``RAPPORT_DB_URL``,
else the default SQLite file in the data directory. With ``--broker`` it also runs the store
consumer (services/reports/consumer.py), filling the database from the workers' topics, and
the live dashboard (``/live``, ``/v1/live``; services/reports/live*.py) tailing them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from functools import partial
from typing import Any

from aiohttp import web
from aiokafka.errors import KafkaError

from models.errors import ValidationError
from services.cli.tokens import add_db_url, open_store
from services.health import Check, add_health_routes, database_problem
from services.reports import LiveConsumer, LiveHub, add_live_routes, create_app
from services.reports.consumer import GROUP_ID, StoreConsumer
from services.store import ReportStore, StoreError
from services.web import server_options, start_site
from streams.broker_probe import BrokerProbe, bootstrap_servers

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reports",
        help="serve the report API (sessions, reports, timelines, trends, CSV)",
        description="Serve the authenticated report API over the report database; "
                    "its OpenAPI description is at /openapi.json. Tokens come from "
                    "`rapport tokens create --clinic C --scope reports`.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8080,
                        help="port; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--broker", default=None, metavar="URL",
                        help="also consume rapport.reports, rapport.quality and rapport.alerts "
                             "from this Kafka broker (kafka://HOST:PORT, or HOST:PORT,... as "
                             "`rapport kafka` prints it) into the database, "
                             f"in consumer group {GROUP_ID}, and show sessions in progress "
                             "on the live dashboard (/live)")
    add_db_url(parser)
    parser.set_defaults(handler=run)


def add_health(app: web.Application, store: ReportStore,
               broker: str | None) -> BrokerProbe | None:
    """``/healthz``, ``/metrics`` and ``/readyz`` (database reachable; with ``broker``, the
    broker answers too) on ``app``; returns the broker probe to close, if any."""
    probe = BrokerProbe(bootstrap_servers(broker)) if broker else None
    checks: list[tuple[str, Check]] = [("database", partial(database_problem, store))]
    if probe is not None:
        checks.append(("broker", probe.check))
    add_health_routes(app, checks)
    return probe


async def serve(store: ReportStore, host: str, port: int, broker: str | None = None) -> None:
    app = create_app(store)
    hub = LiveHub(hide=store.pseudonymize.apply)
    add_live_routes(app, hub)
    probe = add_health(app, store, broker)
    runner = web.AppRunner(app, access_log=log, **server_options())
    await runner.setup()
    consumer = StoreConsumer(store, broker) if broker else None
    live = LiveConsumer(hub, broker) if broker else None
    consuming: asyncio.Task[None] | None = None
    tailing: asyncio.Task[None] | None = None
    try:
        if consumer is not None and live is not None:
            await consumer.start()
            consuming = asyncio.create_task(consumer.run())
            await live.start()
            tailing = asyncio.create_task(live.run())
        bound = await start_site(runner, host, port)
        print(f"reports: http://{host}:{bound}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        if consuming is not None:
            await asyncio.wait([consuming, asyncio.create_task(stop.wait())],
                               return_when=asyncio.FIRST_COMPLETED)
            if consuming.done():
                consuming.result()  # re-raise a consumer failure
        else:
            await stop.wait()
    finally:
        if live is not None:
            await live.stop()
        if tailing is not None:
            await tailing
        if consumer is not None:
            await consumer.stop()
        await runner.cleanup()
        if probe is not None:
            await probe.close()


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        print("rapport reports: --port must be 0..65535", file=sys.stderr)
        return 2
    try:
        store = open_store(args)
    except (StoreError, ValidationError) as error:
        print(f"rapport reports: {error}", file=sys.stderr)
        return 1
    try:
        asyncio.run(serve(store, args.host, args.port, args.broker))
    except OSError as error:
        print(f"rapport reports: cannot listen on {args.host}:{args.port}: {error.strerror}",
              file=sys.stderr)
        return 1
    except KafkaError as error:
        print(f"rapport reports: cannot consume from {args.broker}: {error}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0
