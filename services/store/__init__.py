"""The report store (issue 5): final reports, timelines, alerts and API tokens in SQLite or
PostgreSQL, through SQLAlchemy 2 with Alembic migrations applied on open.

Modules: ``schema`` (tables), ``database`` (engines, migrations, :class:`StoreError`),
``records`` (the worker records it reads), ``pseudonyms`` (HMAC of participant ids),
``sessions`` (reports and session queries, METRICS.md §10), ``timeline`` (classified events
§2–§6 and alerts §7), ``tokens`` (API tokens), ``labels`` (sealed display labels, issue 19),
``audit`` (the audit log, issue 19) and ``store`` (:class:`ReportStore`, the facade).
"""

from __future__ import annotations

from services.store.audit import AuditRecord
from services.store.database import StoreError
from services.store.sessions import Cursor, SessionPage, SessionQuery
from services.store.store import ReportStore
from services.store.timeline import TimelinePage
from services.store.tokens import SCOPES, TokenInfo

__all__ = ["SCOPES", "AuditRecord", "Cursor", "ReportStore", "SessionPage", "SessionQuery",
           "StoreError", "TimelinePage", "TokenInfo"]
