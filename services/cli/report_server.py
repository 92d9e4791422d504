"""The report service's server (``rapport reports``): the API, pages and live dashboard over
the report database, with the health routes and, given a broker, the store and live consumers.
Kept apart from services/cli/reports.py so that registering the command imports none of it."""

from __future__ import annotations

import asyncio
import logging
import signal
from functools import partial

from aiohttp import web

from services.health import Check, add_health_routes, database_problem
from services.reports import LiveConsumer, LiveHub, add_live_routes, create_app
from services.reports.access_log import RouteAccessLogger
from services.reports.consumer import StoreConsumer
from services.reports.purge_schedule import add_purge_schedule
from services.store import ReportStore
from services.web import server_options, start_site
from streams.broker_probe import BrokerProbe, bootstrap_servers
from streams.kafka_security import KafkaSecurity

log = logging.getLogger("services.cli.reports")


def add_health(app: web.Application, store: ReportStore, broker: str | None,
               security: KafkaSecurity | None = None) -> BrokerProbe | None:
    """``/healthz``, ``/metrics`` and ``/readyz`` (database reachable; with ``broker``, the
    broker answers too) on ``app``; returns the broker probe to close, if any."""
    probe = BrokerProbe(bootstrap_servers(broker), security) if broker else None
    checks: list[tuple[str, Check]] = [("database", partial(database_problem, store))]
    if probe is not None:
        checks.append(("broker", probe.check))
    add_health_routes(app, checks)
    return probe


async def serve(store: ReportStore, host: str, port: int, broker: str | None = None,
                security: KafkaSecurity | None = None,
                purge_interval_s: float | None = None) -> None:
    app = create_app(store)
    if purge_interval_s is not None:  # the retention purge (issue 19)
        add_purge_schedule(app, store, purge_interval_s)
    hub = LiveHub(hide=store.pseudonymize.apply)
    add_live_routes(app, hub)
    probe = add_health(app, store, broker, security)
    # Paths carry participant ids (issue 19): the access log names the route, not the path.
    runner = web.AppRunner(app, access_log=log, access_log_class=RouteAccessLogger,
                           **server_options())
    await runner.setup()
    consumer = StoreConsumer(store, broker, security=security) if broker else None
    live = LiveConsumer(hub, broker, security=security) if broker else None
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
