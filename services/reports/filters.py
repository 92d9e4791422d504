"""Query parameters of the report API, parsed into store queries (issue 5).

Every parser raises :class:`~models.errors.ValidationError` naming the parameter, which the
API answers with ``400 {"error": "<parameter>: <reason>"}``. Dates are ISO 8601: a date
(``2026-11-26``, a whole UTC day: ``from`` includes it from 00:00, ``to`` includes it until
24:00) or a date-time (``2026-11-26T14:30:00Z``; without an offset it is UTC; ``to`` is then
exclusive). They select sessions by their start (see services/store/sessions.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import get_args

from models.classified import AlertType
from models.context import DEFAULT_CONTEXT_N, MAX_CONTEXT_N
from models.errors import ValidationError
from services.auth import ApiError
from services.store.sessions import DEFAULT_PAGE, MAX_PAGE, Cursor, SessionQuery
from services.store.timeline import DEFAULT_TIMELINE_PAGE, MAX_TIMELINE_PAGE

ALERT_TYPES: tuple[str, ...] = get_args(AlertType)  # METRICS.md §7
TIMELINE_KINDS = ("ipu", "speaker_change", "interruption", "collision", "lapse")  # §2–§6
SESSION_PARAMETERS = frozenset({"clinic", "therapist", "from", "to", "alert", "limit", "cursor"})
TIMELINE_PARAMETERS = frozenset({"clinic", "kind", "after", "limit"})
REPORT_PARAMETERS = frozenset({"clinic", "context_n"})
TREND_PARAMETERS = frozenset({"from", "to", "limit", "context_n"})
CLIENT_PARAMETERS = frozenset({"clinic", "from", "to", "limit"})
DEFAULT_TREND = 100
MAX_TREND = 1000
MAX_ID_LENGTH = 200
_PSEUDONYM = re.compile(r"[0-9a-f]{64}")


def check_known(params: Mapping[str, str], known: frozenset[str]) -> None:
    for name in params:
        if name not in known:
            raise ValidationError(name, f"unknown parameter (known: {', '.join(sorted(known))})")


def parse_time(name: str, text: str, *, end: bool = False) -> int:
    """Epoch milliseconds of an ISO date or date-time; a date as ``end`` means the end of that
    day (the next midnight, UTC)."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
            if end:
                # The end of 9999-12-31 is past datetime's range: the last representable moment.
                moment = (moment + timedelta(days=1) if day < date.max
                          else datetime.max.replace(tzinfo=timezone.utc))
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
        # An offset can carry a moment out of datetime's range (0001-01-01T00:00:00+01:00).
        stamp = moment.timestamp()
    except (ValueError, OverflowError):
        raise ValidationError(name, "must be an ISO date (YYYY-MM-DD) or date-time "
                                    "(YYYY-MM-DDTHH:MM:SSZ) from year 1 to 9999") from None
    return int(stamp * 1000)


def parse_int(name: str, text: str, *, lowest: int, highest: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValidationError(name, f"must be an integer from {lowest} to {highest}") from None
    if not lowest <= value <= highest:
        raise ValidationError(name, f"must be an integer from {lowest} to {highest}")
    return value


def parse_therapist(name: str, text: str) -> str:
    value = text.strip().lower()
    if not _PSEUDONYM.fullmatch(value):
        raise ValidationError(name, "must be a therapist pseudonym (64 hex digits, "
                                    "HMAC-SHA256 of the participant id; see docs)")
    return value


def parse_alert(name: str, text: str) -> str:
    value = text.strip()
    if value not in ALERT_TYPES:
        raise ValidationError(name, f"must be one of {', '.join(ALERT_TYPES)}")
    return value


def parse_id(name: str, text: str) -> str:
    if not text or len(text) > MAX_ID_LENGTH:
        raise ValidationError(name, f"must be a non-empty id of at most {MAX_ID_LENGTH} "
                                    "characters")
    return text


def date_range(params: Mapping[str, str]) -> tuple[int | None, int | None]:
    from_ms = parse_time("from", params["from"]) if "from" in params else None
    until_ms = parse_time("to", params["to"], end=True) if "to" in params else None
    # ``to`` at or before ``from`` is an empty range: it selects nothing (like SQL's BETWEEN
    # with its bounds swapped), which is a valid question, not an error.
    return from_ms, until_ms


def session_clinic(params: Mapping[str, str], viewer_clinic: str | None) -> str | None:
    """The clinic of a one-session route (``/v1/sessions/{id}/…``, ``/sessions/{id}``): a
    session is (clinic, session id) (issue 16 finding 1). A clinic token reads its own clinic
    (and may repeat it); an ``admin`` token names one with ``?clinic=``, or gets None: the
    handler then looks the id up in every clinic (:func:`resolve_clinic`)."""
    if "clinic" not in params:
        return viewer_clinic
    asked = parse_id("clinic", params["clinic"])
    if viewer_clinic is not None and asked != viewer_clinic:
        raise ApiError(403, "clinic: only an admin token may choose the clinic; "
                            "a clinic token reads its own clinic")
    return asked


def resolve_clinic(session_id: str, clinics: list[str]) -> str | None:
    """For an admin who named no clinic: the one clinic with this session id, None when
    none has it (404), and a ``409`` naming ``clinic`` when several do."""
    if len(clinics) > 1:
        raise ApiError(409, f"clinic: several clinics have a session {session_id!r}; name "
                            "one with ?clinic=")
    return clinics[0] if clinics else None


def parse_session_query(params: Mapping[str, str], viewer_clinic: str | None) -> SessionQuery:
    """Filters of ``GET /v1/sessions`` (and the CSV export). ``viewer_clinic`` is the
    token's clinic, or None for an admin token, which alone may choose ``clinic``."""
    check_known(params, SESSION_PARAMETERS)
    clinic = viewer_clinic
    if "clinic" in params:
        asked = parse_id("clinic", params["clinic"])
        if viewer_clinic is not None and asked != viewer_clinic:
            # Forbidden, not malformed: the request is well-formed, the token may not ask it.
            raise ApiError(403, "clinic: only an admin token may choose the clinic; "
                                "a clinic token reads its own clinic")
        clinic = asked
    from_ms, until_ms = date_range(params)
    return SessionQuery(
        clinic=clinic,
        therapist=parse_therapist("therapist", params["therapist"])
        if "therapist" in params else None,
        from_ms=from_ms,
        until_ms=until_ms,
        alert=parse_alert("alert", params["alert"]) if "alert" in params else None,
        limit=parse_int("limit", params["limit"], lowest=1, highest=MAX_PAGE)
        if "limit" in params else DEFAULT_PAGE,
        cursor=Cursor.decode(params["cursor"]) if "cursor" in params else None,
    )


def scope_query(query: SessionQuery, own: str | None) -> SessionQuery | None:
    """A session query narrowed to a ``therapist`` token's own sessions (issue 19): ``own``
    is its pseudonym (None: any other scope, unchanged). Asking for another therapist
    selects nothing (None: the caller answers an empty list, as for a therapist with no
    sessions, so colleagues cannot be probed)."""
    if own is None:
        return query
    if query.therapist is not None and query.therapist != own:
        return None
    return replace(query, therapist=own)


def parse_timeline_params(params: Mapping[str, str]
                          ) -> tuple[frozenset[str] | None, int | None, int]:
    """(kinds, after, limit) of ``GET /v1/sessions/{id}/timeline``."""
    check_known(params, TIMELINE_PARAMETERS)
    kinds = None
    if "kind" in params:
        kinds = frozenset(k.strip() for k in params["kind"].split(",") if k.strip())
        unknown = sorted(kinds - set(TIMELINE_KINDS))
        if unknown or not kinds:
            raise ValidationError("kind", f"must be a comma-separated list of "
                                          f"{', '.join(TIMELINE_KINDS)}")
    after = parse_int("after", params["after"], lowest=-1, highest=2**31 - 1) \
        if "after" in params else None
    limit = parse_int("limit", params["limit"], lowest=1, highest=MAX_TIMELINE_PAGE) \
        if "limit" in params else DEFAULT_TIMELINE_PAGE
    return kinds, after, limit


def parse_context_n(params: Mapping[str, str]) -> int:
    """``context_n``: how many of each therapist's latest sessions numbers in context use
    (issue 19; default :data:`models.context.DEFAULT_CONTEXT_N`)."""
    if "context_n" not in params:
        return DEFAULT_CONTEXT_N
    return parse_int("context_n", params["context_n"], lowest=1, highest=MAX_CONTEXT_N)


def client_clinic(params: Mapping[str, str], viewer_clinic: str | None) -> str:
    """The clinic of ``/v1/clients/{id}/…``: the token's; an admin must name it (``400``
    naming ``clinic``: a client is a clinic's, never looked up across clinics)."""
    clinic = session_clinic(params, viewer_clinic)
    if clinic is None:
        raise ValidationError("clinic", "an admin token must name the clinic (?clinic=)")
    return clinic


def parse_trend_params(params: Mapping[str, str]) -> tuple[int | None, int | None, int]:
    """(from_ms, until_ms, limit) of ``GET /v1/therapists/{id}/trend``."""
    check_known(params, TREND_PARAMETERS)
    from_ms, until_ms = date_range(params)
    limit = parse_int("limit", params["limit"], lowest=1, highest=MAX_TREND) \
        if "limit" in params else DEFAULT_TREND
    return from_ms, until_ms, limit
