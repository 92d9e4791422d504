"""Queries behind numbers in context and clients over time (issue 19 points 2 and 3).

- :func:`latest_summaries`: per therapist of one clinic, the headline metrics (``summary``,
  METRICS.md §10 values; see :data:`services.store.sessions.SUMMARY_FIELDS`) of their latest
  ``n`` sessions before a position; :mod:`models.context` reduces them to own medians and the
  clinic band. One query with a window function (``ROW_NUMBER() OVER (PARTITION BY
  therapist …)``, on SQLite and PostgreSQL alike), reading the small summary column only.
- :func:`client_sessions`: the sessions a client took part in (``session_participants`` rows
  of role ``client``, written from each report's roster), oldest first, with the client
  role's talk share, longest monologue (longest uninterrupted stretch), times interrupted
  (``interrupted``: successful interruptions suffered) and median response latency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from services.store.schema import SessionParticipant, SessionRow
from services.store.sessions import describe

# Client metrics over time: name -> path in the §10 report's ``roles.client``.
CLIENT_FIELDS: dict[str, tuple[str, ...]] = {
    "talk_share": ("talk_share",),
    "longest_monologue_s": ("longest_monologue_s",),
    "interrupted": ("interrupted",),
    "response_latency_median_ms": ("response_latency_ms", "median"),
}


@dataclass(frozen=True, slots=True)
class Position:
    """Sessions strictly before (``started_at_ms``, ``session_id``) in the list order; a
    ``session_id`` of None means every session started before ``started_at_ms``."""

    started_at_ms: int
    session_id: str | None = None


def latest_summaries(session: Session, clinic: str, n: int, before: Position | None = None
                     ) -> dict[str, list[dict[str, Any]]]:
    """Therapist pseudonym -> summaries of their latest ``n`` sessions (newest first)."""
    rank = func.row_number().over(
        partition_by=SessionRow.therapist,
        order_by=(SessionRow.started_at_ms.desc(), SessionRow.session_id.desc()),
    ).label("rank")
    inner = select(SessionRow.therapist, SessionRow.summary, rank).where(
        SessionRow.clinic_id == clinic, SessionRow.therapist.is_not(None))
    if before is not None:
        if before.session_id is None:
            inner = inner.where(SessionRow.started_at_ms < before.started_at_ms)
        else:
            inner = inner.where(or_(
                SessionRow.started_at_ms < before.started_at_ms,
                and_(SessionRow.started_at_ms == before.started_at_ms,
                     SessionRow.session_id < before.session_id)))
    ranked = inner.subquery()
    statement = (select(ranked.c.therapist, ranked.c.summary).where(ranked.c.rank <= n)
                 .order_by(ranked.c.therapist, ranked.c.rank))
    found: dict[str, list[dict[str, Any]]] = {}
    for therapist, summary in session.execute(statement):
        found.setdefault(therapist, []).append(dict(summary or {}))
    return found


def session_position(session: Session, clinic: str, session_id: str
                     ) -> tuple[Position, str | None] | None:
    """(position, therapist) of a stored session, None when ``clinic`` has no such one."""
    row = session.execute(select(SessionRow.started_at_ms, SessionRow.therapist).where(
        SessionRow.clinic_id == clinic, SessionRow.session_id == session_id)).first()
    if row is None:
        return None
    return Position(row.started_at_ms, session_id), row.therapist


def _dig(data: Any, path: Sequence[str]) -> Any:
    for step in path:
        data = data.get(step) if isinstance(data, dict) else None
    return data if isinstance(data, int | float) and not isinstance(data, bool) else None


def client_sessions(session: Session, clinic: str, client: str, *, therapist: str | None = None,
                    from_ms: int | None = None, until_ms: int | None = None, limit: int = 100
                    ) -> list[dict[str, Any]]:
    """The client's latest ``limit`` sessions in ``clinic``, oldest first; ``therapist``
    narrows them to that therapist's (a therapist token)."""
    statement = (select(SessionRow).join(SessionParticipant, and_(
        SessionParticipant.clinic_id == SessionRow.clinic_id,
        SessionParticipant.session_id == SessionRow.session_id))
        .where(SessionRow.clinic_id == clinic, SessionParticipant.participant == client,
               SessionParticipant.role == "client"))
    if therapist is not None:
        statement = statement.where(SessionRow.therapist == therapist)
    if from_ms is not None:
        statement = statement.where(SessionRow.started_at_ms >= from_ms)
    if until_ms is not None:
        statement = statement.where(SessionRow.started_at_ms < until_ms)
    statement = statement.order_by(SessionRow.started_at_ms.desc(),
                                   SessionRow.session_id.desc()).limit(limit)
    out = []
    for row in session.scalars(statement):
        role = ((row.report or {}).get("roles") or {}).get("client")
        entry = {key: value for key, value in describe(row).items() if key != "metrics"}
        entry["client"] = {name: _dig(role, path) for name, path in CLIENT_FIELDS.items()}
        out.append(entry)
    return list(reversed(out))


def client_known(session: Session, clinic: str, client: str) -> bool:
    """Whether the clinic has any session with this client (unknown and another clinic's
    client are answered alike: 404)."""
    return session.execute(select(SessionParticipant.session_id).where(
        SessionParticipant.clinic_id == clinic, SessionParticipant.participant == client,
        SessionParticipant.role == "client").limit(1)).first() is not None
