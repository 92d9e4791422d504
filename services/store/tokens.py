"""API tokens: bearer credentials scoped to one clinic (issue 5, "Authentication and tenancy").

A token is 32 random bytes (``secrets.token_urlsafe``) behind the prefix ``rpt_``; the store
keeps only its SHA-256, so a leaked database reveals no usable token, and the token is shown
once, when created. Scopes:

- ``ingest``: may post events for its clinic (the ingest service, issue 4);
- ``reports``: may read its clinic's sessions, reports, timelines and trends;
- ``admin``: operations; may read every clinic;
- ``clinic-admin`` (issue 19): administers one clinic: its directory, consent records,
  retention policy, erasure and audit log, and reads its reports like ``reports``;
- ``therapist`` (issue 19): one therapist of one clinic (``participant``: their pseudonym);
  sees only that therapist's own sessions and trends;
- ``session`` (issue 18): a short-lived token for one session and participant, minted from an
  ``ingest`` or ``admin`` token by ``POST /v1/session-tokens`` (never by the CLI) so that no
  long-lived secret reaches a browser. It is valid only while its parent token is valid and
  until ``expires_at`` (:func:`verify_token` checks both), and it may post only its session's
  events (services/ingest/access.py) and, for a therapist, read that session's coach stream.

A token is named in listings by the first :data:`ID_LENGTH` hex digits of its hash (its id);
``revoke`` takes any unambiguous prefix of that id, or the token itself.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from models.errors import ValidationError
from services.store.schema import TokenRow

SCOPES = ("ingest", "reports", "admin", "clinic-admin", "therapist")  # what the CLI creates
THERAPIST_SCOPE = "therapist"
SESSION_SCOPE = "session"
PARENT_SCOPES = ("ingest", "admin")  # may mint session tokens
SESSION_TTL_S = 4 * 3600  # default life of a session token
MAX_SESSION_TTL_S = 24 * 3600
# Session tokens are kept this long after they expire (so `rapport tokens list --sessions`
# can still show them), then deleted when new ones are minted: two per session would
# otherwise pile up forever.
EXPIRED_KEPT = timedelta(days=7)
TOKEN_PREFIX = "rpt_"
ID_LENGTH = 12
MIN_REVOKE_PREFIX = 6


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str  # the first ID_LENGTH hex digits of the token's SHA-256
    clinic_id: str
    scope: str
    created_at: datetime
    revoked_at: datetime | None
    # Session tokens only (scope "session"): their session, participant pseudonym, role,
    # expiry and the id of the parent token they were minted from.
    session_id: str | None = None
    participant: str | None = None
    role: str | None = None
    expires_at: datetime | None = None
    parent_id: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _utc(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:  # SQLite keeps no zone; stored as UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


def _info(row: TokenRow) -> TokenInfo:
    created = _utc(row.created_at)
    assert created is not None
    parent = row.parent_hash[:ID_LENGTH] if row.parent_hash else None
    return TokenInfo(row.token_hash[:ID_LENGTH], row.clinic_id, row.scope, created,
                     _utc(row.revoked_at), row.session_id, row.participant, row.role,
                     _utc(row.expires_at), parent)


def create_token(session: Session, clinic_id: str, scope: str,
                 participant: str | None = None) -> tuple[str, TokenInfo]:
    """A new token for ``clinic_id`` with ``scope``; returns the token (shown once) and its
    record. A ``therapist`` token needs ``participant`` (the therapist's pseudonym); no other
    scope takes one."""
    if scope not in SCOPES:
        raise ValidationError("scope", f"must be one of {', '.join(SCOPES)}")
    if not clinic_id or len(clinic_id) > 200:
        raise ValidationError("clinic", "must be a non-empty id of at most 200 characters")
    if scope == THERAPIST_SCOPE and not participant:
        raise ValidationError("participant", "a therapist token is bound to one therapist: "
                                             "give their participant id")
    if scope != THERAPIST_SCOPE and participant is not None:
        raise ValidationError("participant", "only a therapist token names a participant")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = TokenRow(token_hash=hash_token(token), clinic_id=clinic_id, scope=scope,
                   created_at=datetime.now(timezone.utc), revoked_at=None,
                   participant=participant,
                   role="therapist" if scope == THERAPIST_SCOPE else None)
    session.add(row)
    session.flush()
    return token, _info(row)


def create_session_token(session: Session, parent_token: str, *, clinic_id: str,
                         session_id: str, participant: str, role: str, ttl_s: int,
                         now: datetime | None = None) -> tuple[str, TokenInfo]:
    """A session token minted from ``parent_token`` (which must be a valid ``ingest`` or
    ``admin`` token; the caller checked the clinic), for ``participant`` (a pseudonym) of
    ``session_id``, valid ``ttl_s`` seconds."""
    parent = session.get(TokenRow, hash_token(parent_token))
    if parent is None or parent.revoked_at is not None or parent.scope not in PARENT_SCOPES:
        raise ValidationError("authorization", "only a valid ingest or admin token may mint "
                                               "session tokens")
    if not 1 <= ttl_s <= MAX_SESSION_TTL_S:
        raise ValidationError("ttl_s", f"must be between 1 and {MAX_SESSION_TTL_S} seconds")
    moment = now or datetime.now(timezone.utc)
    session.execute(delete(TokenRow).where(TokenRow.scope == SESSION_SCOPE,
                                           TokenRow.expires_at < moment - EXPIRED_KEPT))
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = TokenRow(token_hash=hash_token(token), clinic_id=clinic_id, scope=SESSION_SCOPE,
                   created_at=moment, revoked_at=None, parent_hash=parent.token_hash,
                   session_id=session_id, participant=participant, role=role,
                   expires_at=moment + timedelta(seconds=ttl_s))
    session.add(row)
    session.flush()
    return token, _info(row)


def verify_token(session: Session, token: str,
                 now: datetime | None = None) -> TokenInfo | None:
    """The token's record if it exists and is not revoked; a session token also must not
    have expired, and its parent must exist and not be revoked (it dies with its parent)."""
    if not token or len(token) > 200:
        return None
    row = session.get(TokenRow, hash_token(token))
    if row is None or row.revoked_at is not None:
        return None
    if row.scope == SESSION_SCOPE:
        expires = _utc(row.expires_at)
        if expires is None or expires <= (now or datetime.now(timezone.utc)):
            return None
        parent = session.get(TokenRow, row.parent_hash) if row.parent_hash else None
        if parent is None or parent.revoked_at is not None:
            return None
    return _info(row)


def list_tokens(session: Session) -> list[TokenInfo]:
    rows = session.scalars(select(TokenRow).order_by(TokenRow.clinic_id, TokenRow.created_at))
    return [_info(row) for row in rows]


def revoke_token(session: Session, prefix_or_token: str) -> TokenInfo:
    """Revoke the one token whose id starts with the prefix (or the token itself). Revoking
    a revoked token keeps its first revocation time."""
    text = prefix_or_token.strip()
    if text.startswith(TOKEN_PREFIX):
        row = session.get(TokenRow, hash_token(text))
        rows = [row] if row is not None else []
    else:
        if len(text) < MIN_REVOKE_PREFIX or any(c not in "0123456789abcdef" for c in text):
            raise ValidationError("prefix", f"must be at least {MIN_REVOKE_PREFIX} hex digits "
                                            "of a token id (see rapport tokens list)")
        rows = list(session.scalars(select(TokenRow).where(
            TokenRow.token_hash.startswith(text, autoescape=True)).limit(2)))
    if not rows:
        raise ValidationError("prefix", f"no token matches {text[:ID_LENGTH]!r}")
    if len(rows) > 1:
        raise ValidationError("prefix", f"{text!r} matches several tokens; give more digits")
    row = rows[0]
    if row.revoked_at is None:
        row.revoked_at = datetime.now(timezone.utc)
        session.flush()
    return _info(row)
