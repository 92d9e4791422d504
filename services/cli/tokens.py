"""``rapport tokens``: create, list and revoke API tokens (issue 5; services/store/tokens.py).

``create`` prints the new token as the last line of standard output (scripts read it from
there; it is shown only this once); its id, clinic and scope go to standard error. Every
subcommand uses the database of ``--db-url``, else ``RAPPORT_DB_URL``, else the default SQLite
file in the data directory (docs/configuration.md).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from models.errors import ValidationError

if TYPE_CHECKING:
    from services.store import ReportStore

# services/store/tokens.py's SCOPES and SESSION_SCOPE (a unit test keeps them equal): the
# store (SQLAlchemy, Alembic) is imported when a command needs it, not for every command.
SCOPES = ("ingest", "reports", "admin", "clinic-admin", "therapist")
SESSION_SCOPE = "session"


def add_db_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db-url", default=None, metavar="URL",
                        help="report database, e.g. sqlite:///path/rapport.db or "
                             "postgresql+psycopg://user@host/db (default: $RAPPORT_DB_URL, "
                             "else rapport.db in the data directory)")


def open_store(args: argparse.Namespace) -> ReportStore:
    from services.store import ReportStore

    return ReportStore.from_settings(args.config, args.db_url)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "tokens",
        help="create, list and revoke API tokens",
        description="Manage the bearer tokens of the ingest and report APIs. Tokens are "
                    "stored only as SHA-256 hashes; a token is printed once, at creation.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create", help="create a token; prints it as the last line of stdout",
        description="Create a token for one clinic. Scopes: ingest (post events), reports "
                    "(read the clinic's reports: supervisors), clinic-admin (the clinic's "
                    "directory, consent, retention, erasure and audit log, and its reports), "
                    "therapist (one therapist's own sessions and trends; needs "
                    "--participant), admin (operations; reads every clinic).")
    create.add_argument("--clinic", required=True, help="clinic id the token is scoped to")
    create.add_argument("--scope", required=True, choices=SCOPES, help="what the token may do")
    create.add_argument("--participant", metavar="PARTICIPANT_ID",
                        help="therapist scope only: the platform's participant id of the "
                             "therapist the token belongs to (stored as its pseudonym)")
    add_db_url(create)
    create.set_defaults(handler=run_create)
    listing = actions.add_parser("list", help="list tokens (id, clinic, scope, state)")
    listing.add_argument("--sessions", action="store_true",
                         help="also list session tokens (minted by POST /v1/session-tokens; "
                              "hidden by default: there are two per session)")
    add_db_url(listing)
    listing.set_defaults(handler=run_list)
    revoke = actions.add_parser("revoke", help="revoke a token by id prefix (or the token)")
    revoke.add_argument("prefix", help="at least 6 hex digits of the id shown by "
                                       "`rapport tokens list`, or the token itself")
    add_db_url(revoke)
    revoke.set_defaults(handler=run_revoke)


def _fail(error: Exception) -> int:
    print(f"rapport tokens: {error}", file=sys.stderr)
    from services.store import StoreError

    return 1 if isinstance(error, StoreError) else 2


def run_create(args: argparse.Namespace) -> int:
    from services.store import StoreError

    try:
        with open_store(args) as store:
            token, info = store.create_token(args.clinic, args.scope, args.participant)
    except (StoreError, ValidationError) as error:
        return _fail(error)
    print(f"created token {info.id} for clinic {info.clinic_id}, scope {info.scope} "
          "(shown once; keep it secret)", file=sys.stderr)
    print(token, flush=True)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from services.store import StoreError

    try:
        with open_store(args) as store:
            tokens = store.list_tokens()
    except (StoreError, ValidationError) as error:
        return _fail(error)
    print(f"{'id':<14}{'clinic':<24}{'scope':<9}{'created':<22}state")
    now = datetime.now(timezone.utc)
    for info in tokens:
        if info.scope == SESSION_SCOPE and not getattr(args, "sessions", False):
            continue
        state = "active" if info.active else \
            f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "revoked"
        if info.active and info.expires_at is not None:
            state = f"expired {info.expires_at:%Y-%m-%d %H:%M}" if info.expires_at <= now \
                else f"active until {info.expires_at:%Y-%m-%d %H:%M}"
        if info.scope == SESSION_SCOPE:
            state += f" ({info.role} of session {info.session_id}, from {info.parent_id})"
        print(f"{info.id:<14}{info.clinic_id:<24}{info.scope:<9}"
              f"{info.created_at:%Y-%m-%d %H:%M:%S}   {state}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    from services.store import StoreError

    try:
        with open_store(args) as store:
            info = store.revoke_token(args.prefix)
    except (StoreError, ValidationError) as error:
        return _fail(error)
    print(f"revoked token {info.id} (clinic {info.clinic_id}, scope {info.scope})")
    return 0
