"""``rapport reports``: serve the report API and pages (issue 5; services/reports) until
interrupted.

Prints ``reports: http://HOST:PORT`` as the last line of standard output once listening
(``--port 0`` picks a free port). Uses the database of ``--db-url``, else ``RAPPORT_DB_URL``,
else the default SQLite file in the data directory. With ``--broker`` it also runs the store
consumer (services/reports/consumer.py), filling the database from the workers' topics, and
the live dashboard (``/live``, ``/v1/live``; services/reports/live*.py) tailing them. Every
``RAPPORT_PURGE_INTERVAL_S`` seconds it runs the retention purge (services/reports/
purge_schedule.py; ``rapport purge`` runs it once).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from models.errors import ValidationError
from services.cli.tokens import add_db_url, open_store

# services/reports/consumer.py's GROUP_ID (a unit test keeps them equal), for the help text
# without importing the consumer.
GROUP_ID = "rapport-reports"


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


def run(args: argparse.Namespace) -> int:
    import asyncio

    from aiokafka.errors import KafkaError

    from services.cli.report_server import serve
    from services.store import StoreError

    if not 0 <= args.port <= 65535:
        print("rapport reports: --port must be 0..65535", file=sys.stderr)
        return 2
    try:
        store = open_store(args)
    except (StoreError, ValidationError) as error:
        print(f"rapport reports: {error}", file=sys.stderr)
        return 1
    try:
        asyncio.run(serve(store, args.host, args.port, args.broker, args.config.kafka,
                          purge_interval_s=args.config.purge_interval_s))
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
