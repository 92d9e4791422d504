"""``rapport purge``: run the retention purge once (issue 19, point 5) and print its counts.

What the reports service does every ``RAPPORT_PURGE_INTERVAL_S`` (services/reports/
purge_schedule.py), on demand: for a cron job, before a backup, or to see with ``--dry-run``
what the next scheduled purge will delete. The purge is audited with the token id ``cli``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from models.errors import ValidationError
from services.cli.tokens import add_db_url, open_store


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "purge",
        help="delete sessions and audit entries older than each clinic's retention, once",
        description=(
            "Delete, clinic by clinic, every stored session that started more than the "
            "clinic's retention period ago (its policy, else RAPPORT_RETENTION_DAYS, default "
            "365 days) with its timeline, alerts and participants, and every audit entry "
            "older than the clinic's audit retention (else RAPPORT_AUDIT_RETENTION_DAYS, "
            "default 2192 days, six years). Directory labels, consents and policies are kept. "
            "Each clinic purged gets one audit entry (action purge, token id cli). The "
            "reports service runs the same purge every RAPPORT_PURGE_INTERVAL_S seconds."
        ),
    )
    add_db_url(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="count what would be deleted; delete nothing")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from services.store import StoreError
    from services.store.audit import CLI_TOKEN_ID

    try:
        store = open_store(args)
    except (StoreError, ValidationError) as error:
        print(f"rapport purge: {error}", file=sys.stderr)
        return 1
    try:
        purged = store.purge(token_id=CLI_TOKEN_ID, dry_run=args.dry_run)
    except StoreError as error:
        print(f"rapport purge: {error}", file=sys.stderr)
        return 1
    finally:
        store.close()
    verb = "would delete" if args.dry_run else "deleted"
    for counts in purged:
        print(f"{counts.clinic_id}: {verb} " + ", ".join(
            f"{n} {name.replace('_', ' ')}" for name, n in counts.as_dict().items()))
    if not purged:
        print("nothing older than the retention periods")
    return 0
