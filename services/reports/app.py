"""The report service's aiohttp application (issue 5).

:func:`add_report_routes` puts the report API (``/v1/sessions…``, ``/v1/therapists…``,
``/openapi.json``) and the HTML report pages (``/sessions``, ``/sessions/{id}``,
``/therapists/{id}``, ``/signin``, ``/static/rapport.css``) on any application, with the
shared authentication of services/auth.py, so the combined server of ``rapport run --port``
can host them next to ingest, health and metrics on one port. :func:`create_app` builds the
stand-alone application ``rapport reports`` serves.

Errors are JSON ``{"error": "<field>: <reason>"}`` on the API (HTML on pages): ``400`` for a
bad parameter (naming it), ``401``/``403`` from authentication, ``404`` for an unknown or
another clinic's session or therapist, ``503`` when the database fails.
"""

from __future__ import annotations

import logging

from aiohttp import web

from services import auth
from services.reports.audit_api import add_audit_routes
from services.reports.audit_log import install_audit
from services.reports.auth import STORE
from services.reports.clients import add_client_routes
from services.reports.directory_page import add_directory_page
from services.reports.governance import add_governance_routes
from services.reports.handlers import add_routes
from services.reports.pages import add_page_routes
from services.store import ReportStore

log = logging.getLogger(__name__)


def add_report_routes(app: web.Application, store: ReportStore, *, pages: bool = True) -> None:
    """Mount the report API (and, unless ``pages`` is False, the HTML pages) on ``app``,
    installing the shared error and auth middlewares if the app has none yet. ``store`` also
    verifies tokens unless the app already has a verifier (:data:`services.auth.TOKENS`)."""
    auth.install(app, store)
    install_audit(app)  # issue 19: every read and change of a clinic's records is audited
    app[STORE] = store
    add_routes(app)
    add_client_routes(app, pages=pages)
    add_governance_routes(app)  # issue 19: directory, consent, policy, erasure
    add_audit_routes(app, pages=pages)
    if pages:
        add_page_routes(app)
        add_directory_page(app)  # issue 19: the clinic admin's page


def create_app(store: ReportStore, *, pages: bool = True) -> web.Application:
    """The report API and pages over ``store`` (which the caller opens and closes)."""
    app = web.Application()
    add_report_routes(app, store, pages=pages)
    return app
