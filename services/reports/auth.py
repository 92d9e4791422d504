"""Authentication and tenancy of the report API and pages (issue 5).

The mechanism is shared with every other web surface and lives in services/auth.py: each
report route is marked :data:`reads_reports` (``@requires("reports", "admin")``; pages with
:data:`reads_reports_page`). No token, or an unknown or revoked one, is ``401``; an
``ingest`` token is ``403`` (it may post events, not read reports). A ``reports`` token reads
its own clinic only: the handlers pass its clinic (:attr:`Viewer.clinic`) to every store
query, so another clinic's session is not found (``404``, never ``403``, so ids of other
clinics cannot be probed). An ``admin`` token reads every clinic.
"""

from __future__ import annotations

from aiohttp import web

from services.auth import (
    VIEWER,
    ApiError,
    Handler,
    Viewer,
    auth_middleware,
    bearer_token,
    requires,
    viewer,
)
from services.store import ReportStore

READ_SCOPES = ("reports", "admin")
STORE = web.AppKey("store", ReportStore)
reads_reports = requires(*READ_SCOPES)
reads_reports_page = requires(*READ_SCOPES, page=True)

__all__ = ["READ_SCOPES", "STORE", "VIEWER", "ApiError", "Handler", "Viewer", "auth_middleware",
           "bearer_token", "reads_reports", "reads_reports_page", "viewer"]
