"""Authentication and tenancy of the report API and pages (issue 5).

The mechanism is shared with every other web surface and lives in services/auth.py: each
report route is marked :data:`reads_reports` (``@requires("reports", "admin")``; pages with
:data:`reads_reports_page`). No token, or an unknown or revoked one, is ``401``; an
``ingest`` token is ``403`` (it may post events, not read reports). A ``reports`` token reads
its own clinic only: the handlers pass its clinic (:attr:`Viewer.clinic`) to every store
query, so another clinic's session is not found (``404``, never ``403``, so ids of other
clinics cannot be probed). An ``admin`` token reads every clinic.

Issue 19 adds two clinic-bound scopes to every report read route: ``clinic-admin`` reads its
clinic like ``reports``; ``therapist`` reads only its own therapist's sessions (the handlers
narrow every query with :func:`own_therapist`; another therapist's session or trend is
``404``, like a missing one). The live views (:data:`reads_live`) are for supervisors only:
a live session names no therapist until its report is stored, so a ``therapist`` token gets
``403`` there rather than a view it could not be scoped in.
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

READ_SCOPES = ("reports", "admin", "clinic-admin", "therapist")
LIVE_SCOPES = ("reports", "admin", "clinic-admin")
STORE = web.AppKey("store", ReportStore)
reads_reports = requires(*READ_SCOPES)
reads_reports_page = requires(*READ_SCOPES, page=True)
reads_live = requires(*LIVE_SCOPES)
reads_live_page = requires(*LIVE_SCOPES, page=True)


def own_therapist(seen: Viewer) -> str | None:
    """The pseudonym a ``therapist`` token is bound to (None for every other scope: they
    read the whole clinic)."""
    if seen.scope != "therapist":
        return None
    if not seen.participant:  # a therapist token always names one; never widen if not
        raise ApiError(403, "authorization: this therapist token names no therapist")
    return seen.participant


def check_own_session(seen: Viewer, therapist: str | None) -> None:
    """``404`` when a ``therapist`` token asks for a session of another therapist (exactly
    as for a missing session: ids of colleagues' sessions cannot be probed)."""
    own = own_therapist(seen)
    if own is not None and therapist != own:
        raise ApiError(404, "session: not found")

__all__ = ["LIVE_SCOPES", "READ_SCOPES", "STORE", "VIEWER", "ApiError", "Handler", "Viewer",
           "auth_middleware", "bearer_token", "check_own_session", "own_therapist",
           "reads_live", "reads_live_page", "reads_reports", "reads_reports_page", "viewer"]
