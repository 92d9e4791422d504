"""The report service (issue 5): an authenticated JSON API over the report store, with an
OpenAPI 3.1 description at ``/openapi.json``, HTML report pages for clinicians, the
consumer that fills the store from the workers' topics, and the live dashboard (``/live``,
Server-Sent Events at ``/v1/live``). :func:`create_app` builds the aiohttp app;
:func:`add_report_routes` mounts the same routes on another (``rapport run --port``), and
:func:`add_live_routes` the dashboard over a :class:`LiveHub` that a :class:`LiveConsumer`
fills."""

from __future__ import annotations

from services.reports.app import add_report_routes, create_app
from services.reports.live import LiveHub
from services.reports.live_consumer import LiveConsumer
from services.reports.live_pages import add_live_routes

__all__ = ["LiveConsumer", "LiveHub", "add_live_routes", "add_report_routes", "create_app"]
