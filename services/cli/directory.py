"""The clinic's records from the command line (issue 19, points 1, 4 and 5):

- ``rapport directory set|list|remove --clinic C …``: display labels of therapists and clients;
- ``rapport consent set|show --clinic C PARTICIPANT_ID [--analysis yes|no]``;
- ``rapport policy show|set --clinic C [--retention-days N] [--audit-retention-days N]
  [--require-consent yes|no]``;
- ``rapport erase --clinic C --client PID | --therapist PID``: prints the receipt and counts.

Each change is written to the audit log with the token id ``cli``
(services/store/audit.py). Like every command module, registration imports no store (see
tests/unit/test_cli_imports.py); the store is imported when a command runs. Labels are printed
to the operator only, never logged.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, Literal

from models.errors import ValidationError
from services.cli.tokens import add_db_url, open_store

if TYPE_CHECKING:
    from services.store import ReportStore

CLI_TOKEN_ID = "cli"  # services/store/audit.py's CLI_TOKEN_ID (a unit test keeps them equal)
ROLES = ("therapist", "client")
YES_NO = {"yes": True, "no": False}


def _clinic(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clinic", required=True, help="the clinic id")
    add_db_url(parser)


def register(subparsers: Any) -> None:
    directory = subparsers.add_parser(
        "directory", help="the clinic's display labels of therapists and clients",
        description="Give a clinic's therapists (and clients) display labels, shown only on "
                    "that clinic's own pages. Labels are encrypted at rest "
                    "(RAPPORT_LABEL_KEY); reports, Kafka, logs and metrics keep pseudonyms.")
    actions = directory.add_subparsers(dest="action", metavar="ACTION", required=True)
    setting = actions.add_parser("set", help="set (or replace) a participant's label")
    setting.add_argument("participant", metavar="PARTICIPANT_ID",
                         help="the platform's participant id (stored as its pseudonym)")
    setting.add_argument("--role", required=True, choices=ROLES,
                         help="whether the participant is a therapist or a client")
    setting.add_argument("--label", required=True, help='the display label, e.g. "Dr. Lee"')
    _clinic(setting)
    setting.set_defaults(handler=run_directory_set)
    listing = actions.add_parser("list", help="list the clinic's entries")
    _clinic(listing)
    listing.set_defaults(handler=run_directory_list)
    remove = actions.add_parser("remove", help="remove a participant's label")
    remove.add_argument("participant", metavar="PARTICIPANT_ID")
    _clinic(remove)
    remove.set_defaults(handler=run_directory_remove)

    consent = subparsers.add_parser(
        "consent", help="record or show a client's consent to analysis",
        description="Record a client's consent to analysis. --analysis no revokes it and "
                    "ERASES the client's stored sessions (the refusal itself is kept). A "
                    "clinic whose policy requires consent has sessions of clients without "
                    "it rejected at the ingest (rapport policy set --require-consent yes).")
    actions = consent.add_subparsers(dest="action", metavar="ACTION", required=True)
    setting = actions.add_parser("set", help="record consent (yes) or its revocation (no)")
    setting.add_argument("participant", metavar="PARTICIPANT_ID",
                         help="the client's participant id on the platform")
    setting.add_argument("--analysis", required=True, choices=tuple(YES_NO),
                         help="yes: consent recorded; no: revoked (erases their sessions)")
    _clinic(setting)
    setting.set_defaults(handler=run_consent_set)
    show = actions.add_parser("show", help="show the recorded consent")
    show.add_argument("participant", metavar="PARTICIPANT_ID")
    _clinic(show)
    show.set_defaults(handler=run_consent_show)

    policy = subparsers.add_parser(
        "policy", help="show or change a clinic's retention and consent policy",
        description="A clinic's policy: how many days its reports are kept (default 365), "
                    "how many days its audit log is kept (default 2192, six years), and "
                    "whether a client's consent is required before their sessions are "
                    "analysed. Options not given keep their current value.")
    actions = policy.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser("show", help="show the clinic's policy")
    _clinic(show)
    show.set_defaults(handler=run_policy_show)
    setting = actions.add_parser("set", help="change the options given")
    setting.add_argument("--retention-days", type=int, metavar="N",
                         help="keep the clinic's reports N days (rapport purge)")
    setting.add_argument("--audit-retention-days", type=int, metavar="N",
                         help="keep the clinic's audit log N days")
    setting.add_argument("--require-consent", choices=tuple(YES_NO),
                         help="yes: the ingest refuses sessions of clients without recorded "
                              "consent to analysis")
    _clinic(setting)
    setting.set_defaults(handler=run_policy_set)

    erase = subparsers.add_parser(
        "erase", help="erase a client or a therapist of a clinic",
        description="Erase every stored session a client (or therapist) took part in, with "
                    "its timeline and alerts, their directory entry, consent record and "
                    "tokens, and their pseudonym in the audit log; in one transaction. "
                    "Prints the erasure receipt (named by the audit log) and the counts.")
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--client", metavar="PARTICIPANT_ID",
                     help="the client's participant id on the platform")
    who.add_argument("--therapist", metavar="PARTICIPANT_ID",
                     help="the therapist's participant id on the platform")
    _clinic(erase)
    erase.set_defaults(handler=run_erase)


def _fail(command: str, error: Exception) -> int:
    print(f"rapport {command}: {error}", file=sys.stderr)
    from services.store import StoreError

    return 1 if isinstance(error, StoreError) else 2


def _audit(store: ReportStore, clinic: str, action: str, target: str,
           detail: dict[str, Any] | None = None) -> None:
    from services.store import AuditRecord

    store.audit(AuditRecord(clinic, CLI_TOKEN_ID, "cli", action, target, detail or {}))


def _run(command: str, args: argparse.Namespace, body: Any) -> int:
    from services.store import StoreError

    try:
        with open_store(args) as store:
            return int(body(store))
    except (StoreError, ValidationError) as error:
        return _fail(command, error)


def run_directory_set(args: argparse.Namespace) -> int:
    def body(store: ReportStore) -> int:
        new = store.set_label(args.clinic, args.participant, args.role, args.label,
                              by=CLI_TOKEN_ID)
        pseudonym = store.pseudonymize(args.participant)
        _audit(store, args.clinic, "directory.set", f"participant {pseudonym}",
               {"role": args.role})
        print(f"{'added' if new else 'replaced'} the label of {args.role} {pseudonym} "
              f"in clinic {args.clinic}")
        return 0

    return _run("directory", args, body)


def run_directory_list(args: argparse.Namespace) -> int:
    def body(store: ReportStore) -> int:
        entries = store.list_labels(args.clinic)
        print(f"{'role':<11}{'pseudonym':<66}label")
        for entry in entries:
            label = entry.label if entry.label is not None else "(does not open: label key?)"
            print(f"{entry.role:<11}{entry.participant:<66}{label}")
        return 0

    return _run("directory", args, body)


def run_directory_remove(args: argparse.Namespace) -> int:
    def body(store: ReportStore) -> int:
        pseudonym = store.pseudonymize(args.participant)
        if not store.delete_label(args.clinic, args.participant):
            print(f"rapport directory: {pseudonym} is not in the directory of clinic "
                  f"{args.clinic}", file=sys.stderr)
            return 2
        _audit(store, args.clinic, "directory.remove", f"participant {pseudonym}")
        print(f"removed the label of {pseudonym} from clinic {args.clinic}")
        return 0

    return _run("directory", args, body)


def run_consent_set(args: argparse.Namespace) -> int:
    def body(store: ReportStore) -> int:
        analysis = YES_NO[args.analysis]
        record, erased = store.record_consent(args.clinic, args.participant, analysis,
                                              token_id=CLI_TOKEN_ID, scope="cli")
        _audit(store, args.clinic, "consent.set", f"client {record.participant}",
               {"analysis": analysis})
        print(f"recorded consent to analysis: {args.analysis} for client "
              f"{record.participant} in clinic {args.clinic}")
        if erased is not None:
            _print_erasure(erased)
        return 0

    return _run("consent", args, body)


def run_consent_show(args: argparse.Namespace) -> int:
    def body(store: ReportStore) -> int:
        record = store.consent_of(args.clinic, args.participant)
        if record is None:
            print(f"no consent recorded for {store.pseudonymize(args.participant)} in clinic "
                  f"{args.clinic}")
            return 0
        when = record.recorded_at.strftime("%Y-%m-%d %H:%M:%S")
        print(f"client {record.participant}: analysis "
              f"{'yes' if record.analysis else 'no'}, recorded {when} UTC by token "
              f"{record.recorded_by}")
        return 0

    return _run("consent", args, body)


def _print_policy(policy: Any) -> None:
    state = "set" if policy.explicit else "defaults"
    print(f"clinic {policy.clinic_id} ({state}): reports kept {policy.retention_days} days, "
          f"audit log kept {policy.audit_retention_days} days, consent "
          f"{'required' if policy.require_consent else 'not required'}")


def run_policy_show(args: argparse.Namespace) -> int:
    return _run("policy", args, lambda store: _print_policy(store.get_policy(args.clinic)))


def run_policy_set(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    if args.retention_days is not None:
        changes["retention_days"] = args.retention_days
    if args.audit_retention_days is not None:
        changes["audit_retention_days"] = args.audit_retention_days
    if args.require_consent is not None:
        changes["require_consent"] = YES_NO[args.require_consent]
    if not changes:
        print("rapport policy set: give --retention-days, --audit-retention-days or "
              "--require-consent", file=sys.stderr)
        return 2

    def body(store: ReportStore) -> int:
        policy = store.set_policy(args.clinic, CLI_TOKEN_ID, **changes)
        _audit(store, args.clinic, "policy.set", "policy", changes)
        _print_policy(policy)
        return 0

    return _run("policy", args, body)


def _print_erasure(erased: Any) -> None:
    counts = ", ".join(f"{name} {count}" for name, count in erased.counts().items())
    print(f"erased a {erased.role}: receipt {erased.receipt} ({counts})")


def run_erase(args: argparse.Namespace) -> int:
    role: Literal["client", "therapist"] = "client" if args.client else "therapist"
    participant = args.client or args.therapist

    def body(store: ReportStore) -> int:
        from services.store.erasure import NothingToErase

        try:
            erased = store.erase(args.clinic, participant, role, token_id=CLI_TOKEN_ID,
                                 scope="cli", missing_ok=False)
        except NothingToErase:
            print(f"rapport erase: clinic {args.clinic} holds nothing of this {role}",
                  file=sys.stderr)
            return 2
        _print_erasure(erased)
        return 0

    return _run("erase", args, body)
