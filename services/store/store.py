"""The report store (issue 5): what the consumer writes and the report API reads.

:class:`ReportStore` pairs a :class:`~services.store.database.Database` with the
:class:`~services.store.pseudonyms.Pseudonymizer`: every record is parsed
(:mod:`services.store.records`), its participant ids replaced by pseudonyms, and written in
one transaction. Writes are idempotent, so a consumer can commit its offsets after writing and
simply write again after a crash:

- ``save_report`` — once per session id (METRICS.md §10); a redelivery returns False;
- ``add_timeline`` — once per (session id, ``n``) (§2–§6);
- ``add_alert`` — once per (session id, alert type, raised/cleared, ``ts_ms``) (§7).

Reads take ``clinic``: the caller's clinic, or None for every clinic (admin). A session of
another clinic is reported exactly like a missing one (None), which the API turns into 404.
The store is synchronous and thread-safe (one engine with a connection pool); the aiohttp
service calls it from worker threads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

from models.context import DEFAULT_CONTEXT_N, MIN_BAND_THERAPISTS, check_n, context_of
from services.settings import Settings
from services.store import audit as audit_
from services.store import context as context_
from services.store import directory as directory_
from services.store import erasure as erasure_
from services.store import policies as policies_
from services.store import retention as retention_
from services.store import sessions as sessions_
from services.store import timeline as timeline_
from services.store import tokens as tokens_
from services.store.audit import AuditRecord
from services.store.database import Database
from services.store.labels import KEY_FILE as LABEL_KEY_FILE
from services.store.labels import KEY_VARIABLE as LABEL_KEY_VARIABLE
from services.store.labels import LabelSealer
from services.store.policies import PolicyDefaults
from services.store.pseudonyms import Pseudonymizer, load_key
from services.store.records import (
    AlertRecord,
    QualityRecord,
    Record,
    ReportRecord,
    parse_alert,
    parse_quality,
    parse_record,
    parse_report,
)
from services.store.sessions import SessionPage, SessionQuery
from services.store.timeline import TimelinePage
from services.store.tokens import TokenInfo

log = logging.getLogger(__name__)

RawRecord = Mapping[str, Any] | bytes | str


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ReportStore:
    """Sessions, timelines, alerts and tokens in one SQL database (SQLite or PostgreSQL)."""

    def __init__(self, url: str, pseudonym_key: bytes, *,
                 clock: Callable[[], datetime] = _utcnow,
                 label_key: bytes | None = None,
                 policy_defaults: PolicyDefaults | None = None) -> None:
        self.pseudonymize = Pseudonymizer(pseudonym_key)
        # Display labels (issue 19) are sealed with their own key; a store opened without
        # one (tests, tools that never touch labels) derives it from the pseudonym key.
        self.labels = LabelSealer(label_key or b"labels:" + pseudonym_key)
        self.db = Database(url)
        self._clock = clock
        self.policy_defaults = policy_defaults or PolicyDefaults()
        log.info("report store open at %s", self.db.url)

    @classmethod
    def from_settings(cls, settings: Settings, url: str | None = None) -> ReportStore:
        """Open the database ``url`` (default: the settings' database URL) with the settings'
        pseudonym key, creating the data directory and the key file when needed."""
        key = load_key(settings.pseudonym_key, settings.data_dir)
        label_key = load_key(settings.label_key, settings.data_dir, file=LABEL_KEY_FILE,
                             variable=LABEL_KEY_VARIABLE)
        defaults = PolicyDefaults(settings.retention_days, settings.audit_retention_days)
        return cls(url or settings.database_url, key, label_key=label_key,
                   policy_defaults=defaults)

    # --- writes ---------------------------------------------------------------------------

    def save_report(self, raw: RawRecord | ReportRecord) -> bool:
        """Store a final report; False (and nothing changed) if the session is stored."""
        record = raw if isinstance(raw, ReportRecord) else parse_report(raw)
        report = self.pseudonymize.apply(record.report)
        therapist = next((self.pseudonymize(p.participant_id) for p in record.participants
                          if p.role == "therapist"), None)
        with self.db.transaction(f"save report {record.session_id}") as session:
            roster = [(self.pseudonymize(p.participant_id), p.role)
                      for p in record.participants]
            # Issue 19: a clinic requiring consent stores nothing of a session whose client
            # has none recorded (also what the session left before its report).
            refused = directory_.missing_consent(
                session, record.clinic_id, self.policy_defaults,
                [who for who, role in roster if role == "client"])
            if refused:
                erasure_.forget_session(session, record.clinic_id, record.session_id)
                saved = False
            else:
                saved = sessions_.save_report(self.db, session, record, report, therapist,
                                              self._clock(), roster)
        if refused:
            raise directory_.ConsentMissing(record.session_id, refused)
        if not saved:
            log.info("report for session %s already stored; redelivery ignored",
                     record.session_id)
        return saved

    def add_timeline(self, raw: RawRecord | QualityRecord) -> int:
        """Store a quality record's classified events; returns how many were new."""
        record = raw if isinstance(raw, QualityRecord) else parse_quality(raw)
        details = [self.pseudonymize.apply(event.detail) for event in record.events]
        rows = timeline_.timeline_rows(record, details)
        clients = [str(d["participant_id"]) for d in details
                   if d.get("role") == "client" and isinstance(d.get("participant_id"), str)]
        with self.db.transaction(f"add timeline of {record.session_id}") as session:
            refused = directory_.missing_consent(session, record.clinic_id,
                                                 self.policy_defaults, clients)
            if not refused:
                return timeline_.add_timeline(self.db, session, rows)
        raise directory_.ConsentMissing(record.session_id, refused)

    def add_alert(self, raw: RawRecord | AlertRecord) -> bool:
        """Store an alert transition; False if it was already stored."""
        record = raw if isinstance(raw, AlertRecord) else parse_alert(raw)
        detail = self.pseudonymize.apply(record.detail)
        with self.db.transaction(f"add alert of {record.session_id}") as session:
            return timeline_.add_alert(self.db, session, record, detail)

    def add_record(self, raw: RawRecord | Record) -> bool | int:
        """Any worker record, by its ``type``."""
        record = raw if isinstance(raw, ReportRecord | QualityRecord | AlertRecord) \
            else parse_record(raw)
        if isinstance(record, ReportRecord):
            return self.save_report(record)
        if isinstance(record, QualityRecord):
            return self.add_timeline(record)
        return self.add_alert(record)

    def audit(self, record: AuditRecord) -> None:
        """Append ``record`` to the audit log (issue 19), stamped with the store's clock."""
        with self.db.transaction(f"audit {record.action}") as session:
            audit_.append(session, record, self._clock())

    # --- the clinic's records: directory, consent, policy (issue 19) -----------------------
    # Participants are given as the platform's ids (or pseudonyms) and kept as pseudonyms;
    # ``by`` is the id of the token making the change.

    def set_label(self, clinic_id: str, participant_id: str, role: str, label: str,
                  by: str) -> bool:
        """Give a participant a display label (sealed); True when the entry is new."""
        checked = directory_.check_role(role)
        with self.db.transaction("set label") as session:
            return directory_.set_label(session, self.labels, clinic_id,
                                        self.pseudonymize(participant_id), checked, label, by,
                                        self._clock())

    def list_labels(self, clinic_id: str) -> list[directory_.Label]:
        with self.db.transaction("list directory") as session:
            return directory_.list_labels(session, self.labels, clinic_id)

    def label_of(self, clinic_id: str, participant_id: str) -> directory_.Label | None:
        with self.db.transaction("read label") as session:
            return directory_.label_of(session, self.labels, clinic_id,
                                       self.pseudonymize(participant_id))

    def labels_for(self, clinic_id: str) -> dict[str, str]:
        """Pseudonym → display label, for the clinic's own pages."""
        with self.db.transaction("read labels") as session:
            return directory_.labels_for(session, self.labels, clinic_id)

    def delete_label(self, clinic_id: str, participant_id: str) -> bool:
        with self.db.transaction("delete label") as session:
            return directory_.delete_label(session, clinic_id,
                                           self.pseudonymize(participant_id))

    def set_consent(self, clinic_id: str, participant_id: str, analysis: bool,
                    by: str) -> directory_.ConsentRecord:
        with self.db.transaction("set consent") as session:
            return directory_.set_consent(session, clinic_id, self.pseudonymize(participant_id),
                                          analysis, by, self._clock())

    def consent_of(self, clinic_id: str, participant_id: str) -> directory_.ConsentRecord | None:
        with self.db.transaction("read consent") as session:
            return directory_.consent_of(session, clinic_id, self.pseudonymize(participant_id))

    def list_consents(self, clinic_id: str) -> list[directory_.ConsentRecord]:
        with self.db.transaction("list consents") as session:
            return directory_.list_consents(session, clinic_id)

    def consented(self, clinic_id: str, participant_ids: list[str]) -> set[str]:
        """The pseudonyms among ``participant_ids`` whose consent to analysis is recorded."""
        with self.db.transaction("read consents") as session:
            return directory_.consented(session, clinic_id,
                                        [self.pseudonymize(p) for p in participant_ids])

    def get_policy(self, clinic_id: str) -> policies_.Policy:
        with self.db.transaction("read policy") as session:
            return policies_.get_policy(session, clinic_id, self.policy_defaults)

    def set_policy(self, clinic_id: str, by: str, *, retention_days: int | None = None,
                   audit_retention_days: int | None = None,
                   require_consent: bool | None = None) -> policies_.Policy:
        with self.db.transaction("set policy") as session:
            return policies_.set_policy(session, clinic_id, self.policy_defaults, by=by,
                                        at=self._clock(), retention_days=retention_days,
                                        audit_retention_days=audit_retention_days,
                                        require_consent=require_consent)

    # --- erasure (issue 19, point 5) -------------------------------------------------------

    def erase(self, clinic_id: str, participant_id: str, role: erasure_.ErasedRole, *,
              token_id: str, scope: str, missing_ok: bool = True) -> erasure_.Erasure:
        """Erase a client or therapist of ``clinic_id`` (services/store/erasure.py): every
        session of theirs in that role, their directory entry, consent record and tokens;
        their pseudonym redacted in the audit log; one audit record naming the receipt.
        Unless ``missing_ok``, :class:`~services.store.erasure.NothingToErase` when the clinic
        holds nothing of theirs (and nothing is written)."""
        if role not in ("client", "therapist"):
            raise ValueError(f"role: cannot erase a {role!r}")
        with self.db.transaction(f"erase a {role}") as session:
            return erasure_.erase(session, clinic_id, self.pseudonymize(participant_id), role,
                                  token_id=token_id, scope=scope, at=self._clock(),
                                  missing_ok=missing_ok)

    def record_consent(self, clinic_id: str, participant_id: str, analysis: bool, *,
                       token_id: str, scope: str
                       ) -> tuple[directory_.ConsentRecord, erasure_.Erasure | None]:
        """Record a client's consent; revoking it (``analysis`` False) also erases the
        client's data in the same transaction, keeping the consent row (now false) as the
        record of the refusal the ingest enforces."""
        pseudonym = self.pseudonymize(participant_id)
        with self.db.transaction("record consent") as session:
            record = directory_.set_consent(session, clinic_id, pseudonym, analysis, token_id,
                                            self._clock())
            erased = None
            if not analysis:
                erased = erasure_.erase(session, clinic_id, pseudonym, "client",
                                        token_id=token_id, scope=scope, at=self._clock(),
                                        keep_consent=True, action="consent.revoke")
            return record, erased

    # --- the audit log: reading, redacting (issue 19, point 6) ----------------------------

    def audit_entries(self, query: audit_.AuditQuery) -> audit_.AuditPage:
        """A page of one clinic's audit log, newest first (services/store/audit.py)."""
        with self.db.transaction("list audit entries") as session:
            return audit_.list_entries(session, query)

    def export_audit(self, query: audit_.AuditQuery, cap: int) -> audit_.AuditPage:
        """Up to ``cap`` entries of one clinic's audit log, newest first (CSV export)."""
        with self.db.transaction("export audit entries") as session:
            return audit_.export_entries(session, query, cap)

    def redact_audit(self, clinic_id: str, participant_id: str,
                     replacement: str = audit_.ERASED) -> int:
        """Replace a participant's pseudonym (``participant_id`` may be the platform's id or
        the pseudonym itself) in the targets of ``clinic_id``'s audit entries; erasure calls
        this. Returns how many entries changed."""
        pseudonym = self.pseudonymize(participant_id)
        with self.db.transaction("redact audit log") as session:
            return audit_.redact(session, clinic_id, pseudonym, replacement)

    # --- the retention purge (issue 19, point 5) ------------------------------------------

    def purge(self, now: datetime | None = None, *, token_id: str = audit_.SERVICE_TOKEN_ID,
              dry_run: bool = False) -> list[retention_.PurgeCounts]:
        """Delete every clinic's sessions older than its retention and audit entries older
        than its audit retention (services/store/retention.py), one transaction per clinic;
        ``now`` defaults to the store's clock. Returns the counts of the clinics where
        something was (with ``dry_run``: would be) deleted; each such clinic gets one
        ``purge`` audit entry by ``token_id`` (``service`` or ``cli``)."""
        moment = self._clock() if now is None else now
        with self.db.transaction("list clinics to purge") as session:
            clinics = retention_.clinics(session)
        purged = []
        for clinic in clinics:
            with self.db.transaction(f"purge clinic {clinic}") as session:
                policy = policies_.get_policy(session, clinic, self.policy_defaults)
                counts = retention_.purge_clinic(session, policy, moment, token_id=token_id,
                                                 dry_run=dry_run)
            if counts.total:
                purged.append(counts)
                log.info("purge%s: clinic %s: %s", " (dry run)" if dry_run else "", clinic,
                         counts.as_dict())
        return purged

    # --- reads ----------------------------------------------------------------------------

    def list_sessions(self, query: SessionQuery) -> SessionPage:
        with self.db.transaction("list sessions") as session:
            return sessions_.list_sessions(session, query)

    def export_sessions(self, query: SessionQuery) -> list[dict[str, Any]]:
        """Every session matching the filters (limit and cursor ignored), newest first."""
        with self.db.transaction("export sessions") as session:
            return list(sessions_.iter_sessions(session, query))

    def get_report(self, session_id: str, clinic: str) -> dict[str, Any] | None:
        """The session's list entry, its alert transitions and its final report; a session
        is (clinic, session id), so ``clinic`` is always given (issue 16 finding 1)."""
        with self.db.transaction(f"read report {session_id}") as session:
            row = sessions_.get_session(session, clinic, session_id)
            if row is None:
                return None
            return {**sessions_.describe(row),
                    "alerts": timeline_.alerts(session, clinic, session_id),
                    "report": row.report}

    def clinics_of(self, session_id: str) -> list[str]:
        """At most two clinics with a stored session of this id (admin lookups)."""
        with self.db.transaction(f"clinics of {session_id}") as session:
            return sessions_.clinics_of(session, session_id)

    def get_timeline(self, session_id: str, clinic: str, *,
                     kinds: frozenset[str] | None = None, after: int | None = None,
                     limit: int = timeline_.DEFAULT_TIMELINE_PAGE) -> TimelinePage | None:
        """A session's timeline page, or None if ``clinic`` has no such session."""
        with self.db.transaction(f"read timeline {session_id}") as session:
            if not timeline_.session_known(session, clinic, session_id):
                return None
            return timeline_.timeline(session, clinic, session_id, kinds=kinds, after=after,
                                      limit=limit)

    def therapist_trend(self, therapist: str, clinic: str | None, *,
                        from_ms: int | None = None, until_ms: int | None = None,
                        limit: int = 100) -> list[dict[str, Any]]:
        """The therapist's latest sessions (oldest first) with their headline metrics."""
        with self.db.transaction(f"read trend of {therapist}") as session:
            return sessions_.therapist_sessions(session, therapist, clinic, from_ms, until_ms,
                                                limit)

    # --- issue 19: numbers in context, clients over time, therapist scope (i19-ctx) ---------

    def session_therapist(self, session_id: str, clinic: str) -> tuple[bool, str | None]:
        """(stored, therapist pseudonym) of the session (clinic, session id)."""
        with self.db.transaction(f"therapist of {session_id}") as session:
            found = context_.session_position(session, clinic, session_id)
        return (False, None) if found is None else (True, found[1])

    def session_context(self, session_id: str, clinic: str, n: int = DEFAULT_CONTEXT_N
                        ) -> dict[str, Any] | None:
        """A stored session's metrics in context (models/context.py): the therapist's median
        over their latest ``n`` sessions before this one, and the clinic's band over the same
        window of every therapist. None when ``clinic`` has no such session."""
        check_n(n)
        with self.db.transaction(f"context of {session_id}") as session:
            found = context_.session_position(session, clinic, session_id)
            if found is None:
                return None
            position, therapist = found
            row = sessions_.get_session(session, clinic, session_id)
            summary = dict(row.summary) if row is not None else {}
            clinic_rows = context_.latest_summaries(session, clinic, n, position)
        return {"n": n, "therapist": therapist, "before": sessions_.iso_ms(
                    position.started_at_ms),
                "min_band_therapists": MIN_BAND_THERAPISTS,
                "metrics": context_of(therapist, clinic_rows, summary)}

    def therapist_context(self, therapist: str, clinic: str, n: int = DEFAULT_CONTEXT_N,
                          until_ms: int | None = None) -> dict[str, Any]:
        """A therapist's medians over their latest ``n`` sessions (started before
        ``until_ms`` if given) and the clinic's band over the same window."""
        check_n(n)
        before = None if until_ms is None else context_.Position(until_ms)
        with self.db.transaction(f"context of therapist {therapist}") as session:
            clinic_rows = context_.latest_summaries(session, clinic, n, before)
        return {"n": n, "therapist": therapist, "clinic_id": clinic,
                "before": None if until_ms is None else sessions_.iso_ms(until_ms),
                "min_band_therapists": MIN_BAND_THERAPISTS,
                "metrics": context_of(therapist, clinic_rows)}

    def client_sessions(self, participant_id: str, clinic: str, *,
                        therapist: str | None = None, from_ms: int | None = None,
                        until_ms: int | None = None, limit: int = 100
                        ) -> list[dict[str, Any]] | None:
        """A client's sessions in ``clinic`` over time (oldest first), by the platform's
        participant id (or its pseudonym); None when the clinic has no session with them.
        ``therapist`` keeps only that therapist's sessions (a therapist token)."""
        client = self.pseudonymize(participant_id)
        with self.db.transaction("read client sessions") as session:
            if not context_.client_known(session, clinic, client):
                return None
            return context_.client_sessions(session, clinic, client, therapist=therapist,
                                            from_ms=from_ms, until_ms=until_ms, limit=limit)

    # --- tokens ---------------------------------------------------------------------------

    def create_token(self, clinic_id: str, scope: str,
                     participant_id: str | None = None) -> tuple[str, TokenInfo]:
        """A new token; a ``therapist`` token is bound to ``participant_id`` (the platform's
        id of the therapist, kept as its pseudonym)."""
        participant = None if participant_id is None else self.pseudonymize(participant_id)
        with self.db.transaction("create token") as session:
            token, info = tokens_.create_token(session, clinic_id, scope, participant)
        log.info("token %s created for clinic %s, scope %s", info.id, clinic_id, scope)
        return token, info

    def create_session_token(self, parent_token: str, *, clinic_id: str, session_id: str,
                             participant_id: str, role: str, ttl_s: int
                             ) -> tuple[str, TokenInfo]:
        """A session token (issue 18) minted from ``parent_token``; the participant id is
        stored as its pseudonym, like every participant id in the store."""
        with self.db.transaction("create session token") as session:
            token, info = tokens_.create_session_token(
                session, parent_token, clinic_id=clinic_id, session_id=session_id,
                participant=self.pseudonymize(participant_id), role=role, ttl_s=ttl_s)
        log.info("session token %s created from token %s for a %s of session %s",
                 info.id, info.parent_id, role, session_id)
        return token, info

    def verify_token(self, token: str) -> TokenInfo | None:
        with self.db.transaction("verify token") as session:
            return tokens_.verify_token(session, token)

    def list_tokens(self) -> list[TokenInfo]:
        with self.db.transaction("list tokens") as session:
            return tokens_.list_tokens(session)

    def revoke_token(self, prefix_or_token: str) -> TokenInfo:
        with self.db.transaction("revoke token") as session:
            info = tokens_.revoke_token(session, prefix_or_token)
        log.info("token %s revoked", info.id)
        return info

    # --- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ReportStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
