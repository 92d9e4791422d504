"""The report service's aiohttp application (issue 5): :func:`create_app` builds it around an
open :class:`~services.store.ReportStore`; ``rapport reports`` serves it, and ``rapport run``
mounts the same routes next to ingest.

Errors are JSON ``{"error": "<field>: <reason>"}``: ``400`` for a bad parameter (naming it),
``401``/``403`` from authentication (services/reports/auth.py), ``404`` for an unknown or
another clinic's session or therapist, ``503`` when the database fails.
"""

from __future__ import annotations

import logging

from aiohttp import web

from models.errors import ValidationError
from services.reports.auth import STORE, ApiError, Handler, auth_middleware
from services.reports.handlers import add_routes, json_response
from services.store import ReportStore, StoreError

log = logging.getLogger(__name__)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        response = json_response({"error": error.message}, status=error.status)
        if error.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="rapport"'
        return response
    except ValidationError as error:
        return json_response({"error": str(error), "field": error.field}, status=400)
    except StoreError:
        log.exception("report store failed on %s", request.path)
        return json_response({"error": "store: the report database is unavailable"},
                             status=503)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        return json_response({"error": f"{request.path}: {error.reason.lower()}"},
                             status=error.status)


def create_app(store: ReportStore) -> web.Application:
    """The report API over ``store`` (which the caller opens and closes)."""
    app = web.Application(middlewares=[error_middleware, auth_middleware])
    app[STORE] = store
    add_routes(app)
    return app
