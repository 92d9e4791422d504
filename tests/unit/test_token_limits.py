"""Per-token ingest limits (services/ingest/limits.py; issue 16 finding 10) on an injected
clock: the open-session count with its ends and idle expiry, and the event token bucket."""

from __future__ import annotations

import pytest

from services.ingest.limits import EVENT_RATE, OPEN_SESSIONS, LimitExceeded, TokenLimits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limits(clock: Clock, *, sessions: int = 3, rate: float = 10.0, burst: int = 20,
           idle_s: float = 300.0) -> TokenLimits:
    return TokenLimits(max_open_sessions=sessions, events_per_s=rate, burst=burst,
                       idle_s=idle_s, clock=clock)


def test_starts_beyond_the_limit_are_refused_whole_and_name_the_limit() -> None:
    clock = Clock()
    lim = limits(clock)
    assert lim.reserve("t", ["a", "b"]) == frozenset({"a", "b"})
    refused = lim.reserve("t", ["c", "d"])
    assert isinstance(refused, LimitExceeded) and refused.limit == OPEN_SESSIONS
    assert "4 open sessions" in refused.message and "limit of 3" in refused.message
    assert lim.open_count("t") == 2  # the refused request reserved nothing
    assert lim.reserve("t", ["c"]) == frozenset({"c"})


def test_tokens_are_counted_apart() -> None:
    lim = limits(Clock(), sessions=1)
    assert lim.reserve("t1", ["a"]) == frozenset({"a"})
    assert lim.reserve("t2", ["a"]) == frozenset({"a"})
    assert isinstance(lim.reserve("t1", ["b"]), LimitExceeded)


def test_a_repeated_start_is_not_a_new_session() -> None:
    lim = limits(Clock(), sessions=1)
    assert lim.reserve("t", ["a"]) == frozenset({"a"})
    assert lim.reserve("t", ["a"]) == frozenset()
    assert lim.open_count("t") == 1


def test_session_end_frees_a_place_and_a_whole_session_in_one_request_fits() -> None:
    lim = limits(Clock(), sessions=2)
    lim.reserve("t", ["a", "b"])
    lim.commit("t", [], ["a", "b"])
    # start and end of the same session in one request: never open afterwards
    assert lim.reserve("t", ["c"], ["c"]) == frozenset()
    # ending one open session makes room for a new one in the same request
    assert lim.reserve("t", ["d"], ["a"]) == frozenset({"d"})
    lim.commit("t", ["a"], ["d"])
    assert lim.open_count("t") == 2


def test_idle_sessions_expire_and_events_keep_a_session_open() -> None:
    clock = Clock()
    lim = limits(clock, sessions=2, idle_s=300)
    lim.reserve("t", ["a", "b"])
    clock.now += 200
    lim.commit("t", [], ["b"])  # an event of b restarts its idle clock
    refused = lim.reserve("t", ["c"])
    assert isinstance(refused, LimitExceeded)
    assert refused.retry_after_s == 100  # a is idle 300 s after its start
    clock.now += 100
    assert lim.open_count("t") == 1  # a expired, b (seen 100 s ago) did not
    assert lim.reserve("t", ["c"]) == frozenset({"c"})


def test_release_undoes_only_the_reservation() -> None:
    lim = limits(Clock(), sessions=2)
    lim.reserve("t", ["a"])
    reserved = lim.reserve("t", ["a", "b"])
    assert reserved == frozenset({"b"})
    lim.release("t", reserved)
    assert lim.open_count("t") == 1


def test_event_bucket_allows_the_burst_then_the_rate() -> None:
    clock = Clock()
    lim = limits(clock, rate=10, burst=20)
    assert lim.take_events("t", 20) is None
    refused = lim.take_events("t", 5)
    assert isinstance(refused, LimitExceeded) and refused.limit == EVENT_RATE
    assert refused.retry_after_s == 1  # 5 events at 10/s
    clock.now += 0.5
    assert lim.take_events("t", 5) is None
    assert isinstance(lim.take_events("t", 1), LimitExceeded)
    clock.now += 100  # refills to the burst, no further
    assert lim.take_events("t", 20) is None
    assert isinstance(lim.take_events("t", 1), LimitExceeded)
    assert lim.take_events("other", 20) is None


def test_retry_after_covers_the_missing_events() -> None:
    clock = Clock()
    lim = limits(clock, rate=2, burst=20)
    assert lim.take_events("t", 20) is None
    refused = lim.take_events("t", 15)
    assert isinstance(refused, LimitExceeded) and refused.retry_after_s == 8  # 7.5 s
    clock.now += 7.5
    assert lim.take_events("t", 15) is None


def test_a_request_larger_than_the_burst_is_refused_saying_so() -> None:
    lim = limits(Clock(), burst=20)
    refused = lim.take_events("t", 21)
    assert isinstance(refused, LimitExceeded) and "burst of 20" in refused.message


@pytest.mark.parametrize("kwargs", [{"sessions": 0}, {"rate": 0}, {"burst": 0},
                                    {"idle_s": 0}])
def test_nonsense_limits_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        limits(Clock(), **kwargs)  # type: ignore[arg-type]
