"""Query parameters of the report API (services/reports/filters.py): each bad value is an
error naming the parameter; good values become the store's queries."""

from __future__ import annotations

from typing import Any

import pytest

from models.errors import ValidationError
from services.auth import ApiError
from services.reports.filters import (
    parse_session_query,
    parse_time,
    parse_timeline_params,
    parse_trend_params,
)
from services.store.sessions import Cursor, SessionQuery

DAY = 1_772_409_600_000  # 2026-03-02T00:00:00Z
THERAPIST = "ab" * 32


def test_dates_and_date_times() -> None:
    assert parse_time("from", "2026-03-02") == DAY
    assert parse_time("to", "2026-03-02", end=True) == DAY + 86_400_000  # the whole day
    assert parse_time("from", "2026-03-02T01:00:00Z") == DAY + 3_600_000
    assert parse_time("from", "2026-03-02T01:00:00") == DAY + 3_600_000  # naive = UTC
    assert parse_time("from", "2026-03-02T03:00:00+02:00") == DAY + 3_600_000
    assert parse_time("to", "2026-03-02T01:00:00Z", end=True) == DAY + 3_600_000


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "02/03/2026", "", "2026-03-02T25"])
def test_bad_dates_name_the_parameter(text: str) -> None:
    with pytest.raises(ValidationError) as raised:
        parse_time("from", text)
    assert str(raised.value).startswith("from: must be an ISO date")


def test_session_query_defaults_to_the_viewers_clinic() -> None:
    assert parse_session_query({}, "c1") == SessionQuery(clinic="c1")
    assert parse_session_query({}, None) == SessionQuery(clinic=None)
    assert parse_session_query({"clinic": "c1"}, "c1").clinic == "c1"
    assert parse_session_query({"clinic": "c2"}, None).clinic == "c2"  # admin


def test_session_query_every_filter() -> None:
    cursor = Cursor(DAY, "s9").encode()
    query = parse_session_query({"therapist": THERAPIST.upper(), "from": "2026-03-02",
                                 "to": "2026-03-03", "alert": "long_silence", "limit": "7",
                                 "cursor": cursor}, "c1")
    assert query == SessionQuery(clinic="c1", therapist=THERAPIST, from_ms=DAY,
                                 until_ms=DAY + 2 * 86_400_000, alert="long_silence", limit=7,
                                 cursor=Cursor(DAY, "s9"))


def test_cursor_round_trip_keeps_odd_session_ids() -> None:
    for session_id in ("s1", "a:b:c", "ünï cödé/?&"):
        assert Cursor.decode(Cursor(123, session_id).encode()) == Cursor(123, session_id)


@pytest.mark.parametrize(
    ("params", "viewer", "field"),
    [
        ({"therapist": "t1"}, "c1", "therapist"),  # raw ids are not pseudonyms
        ({"from": "soon"}, "c1", "from"),
        ({"to": "2026-02-30"}, "c1", "to"),
        ({"alert": "boredom"}, "c1", "alert"),
        ({"limit": "0"}, "c1", "limit"),
        ({"limit": "1001"}, "c1", "limit"),
        ({"limit": "ten"}, "c1", "limit"),
        ({"cursor": "%%%"}, "c1", "cursor"),
        ({"cursor": "bm9jb2xvbg"}, "c1", "cursor"),  # base64 of "nocolon"
        ({"page": "2"}, "c1", "page"),  # unknown parameters are refused, not ignored
    ],
)
def test_bad_session_filters_name_the_field(params: dict[str, str], viewer: str | None,
                                            field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        parse_session_query(params, viewer)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


def test_a_clinic_token_asking_for_another_clinic_is_forbidden_not_malformed() -> None:
    with pytest.raises(ApiError) as raised:
        parse_session_query({"clinic": "c2"}, "c1")
    assert raised.value.status == 403 and raised.value.message.startswith("clinic: ")
    assert parse_session_query({"clinic": "c1"}, "c1").clinic == "c1"
    assert parse_session_query({"clinic": "c2"}, None).clinic == "c2"  # admin


def test_an_inverted_date_range_is_empty_not_an_error() -> None:
    query = parse_session_query({"from": "2026-03-05", "to": "2026-03-01"}, "c1")
    assert query.from_ms is not None and query.until_ms is not None
    assert query.until_ms <= query.from_ms  # selects nothing: from <= start < until


def test_timeline_parameters() -> None:
    assert parse_timeline_params({}) == (None, None, 5000)
    kinds, after, limit = parse_timeline_params({"kind": "ipu, lapse", "after": "41",
                                                 "limit": "10"})
    assert (kinds, after, limit) == (frozenset({"ipu", "lapse"}), 41, 10)


@pytest.mark.parametrize(("params", "field"), [
    ({"kind": "ipu,laugh"}, "kind"), ({"kind": ","}, "kind"), ({"after": "x"}, "after"),
    ({"limit": "50000"}, "limit"), ({"from": "2026-01-01"}, "from"),
])
def test_bad_timeline_parameters(params: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        parse_timeline_params(params)
    assert raised.value.field == field


def test_trend_parameters() -> None:
    assert parse_trend_params({}) == (None, None, 100)
    assert parse_trend_params({"from": "2026-03-02", "limit": "5"}) == (DAY, None, 5)
    with pytest.raises(ValidationError) as raised:
        parse_trend_params({"alert": "long_silence"})
    assert raised.value.field == "alert"


def test_the_clinic_of_a_one_session_route() -> None:
    """A session is (clinic, id): a clinic token reads its own (and may repeat it), asking
    for another is forbidden; an admin token must name one."""
    from services.reports.filters import session_clinic

    assert session_clinic({}, "c1") == "c1"
    assert session_clinic({"clinic": "c1"}, "c1") == "c1"
    assert session_clinic({"clinic": "c2"}, None) == "c2"
    with pytest.raises(ApiError) as forbidden:
        session_clinic({"clinic": "c2"}, "c1")
    assert forbidden.value.status == 403
    assert session_clinic({}, None) is None  # an admin: looked up by id (resolve_clinic)
