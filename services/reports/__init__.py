"""The report service (issue 5): an authenticated JSON API over the report store, with an
OpenAPI 3.1 description at ``/openapi.json``. :func:`create_app` builds the aiohttp app."""

from __future__ import annotations

from services.reports.app import create_app

__all__ = ["create_app"]
