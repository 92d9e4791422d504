"""The report service (issue 5): an authenticated JSON API over the report store, with an
OpenAPI 3.1 description at ``/openapi.json``, HTML report pages for clinicians, and the
consumer that fills the store from the workers' topics. :func:`create_app` builds the aiohttp
app; :func:`add_report_routes` mounts the same routes on another (``rapport run --port``)."""

from __future__ import annotations

from services.reports.app import add_report_routes, create_app

__all__ = ["add_report_routes", "create_app"]
