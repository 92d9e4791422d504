"""The coach's numbers (services/reports/coach.py, docs/sdk.md "Coach") from hand-built live
records: talk share over the last 10 minutes from the snapshots' cumulative talk, the
therapist's current monologue from final IPUs and live growth, interruptions made, the
client's longest uninterrupted stretch, and nudges once per alert episode."""

from __future__ import annotations

from typing import Any

import pytest

from services.reports.coach import CoachHub, CoachView


def snapshot(therapist_s: float, client_s: float, *, made: tuple[int, int] | None = (0, 0),
             client_longest_s: float | None = None) -> dict[str, Any]:
    therapist: dict[str, Any] = {"talk_s": therapist_s}
    if made is not None:
        therapist["interruptions_made"] = {"successful": made[0], "unsuccessful": made[1]}
    return {"roles": {"therapist": therapist,
                      "client": {"talk_s": client_s, "longest_monologue_s": client_longest_s}}}


def quality(at_ms: int, snap: dict[str, Any], events: list[dict[str, Any]] | None = None
            ) -> dict[str, Any]:
    return {"type": "quality", "session_id": "s1", "clinic_id": "c1", "event_time_ms": at_ms,
            "snapshot": snap, "events": events or []}


def ipu(n: int, role: str, start_ms: int, end_ms: int, backchannel: bool = False
        ) -> dict[str, Any]:
    return {"n": n, "kind": "ipu", "participant_id": "t1" if role == "therapist" else "p1",
            "role": role, "start_ms": start_ms, "end_ms": end_ms, "backchannel": backchannel}


def alert(name: str, ts_ms: int, **detail: Any) -> dict[str, Any]:
    return {"type": "alert", "session_id": "s1", "clinic_id": "c1", "event_time_ms": ts_ms,
            "alert": {"kind": "alert", "alert": name, "ts_ms": ts_ms, **detail}}


def test_talk_share_covers_the_whole_session_until_it_is_ten_minutes_long() -> None:
    view = CoachView("s1", "c1")
    assert view.talk_share_10min() is None
    view.quality(quality(60_000, snapshot(0, 0)))
    assert view.talk_share_10min() is None  # nobody spoke yet
    view.quality(quality(120_000, snapshot(30, 10)))
    assert view.talk_share_10min() == 0.75


def test_talk_share_uses_only_the_last_ten_minutes() -> None:
    view = CoachView("s1", "c1")
    # first 10 min: the therapist talks 300 s, the client 0; the next 10: 60 s against 240 s
    for minute in range(0, 21):
        t = min(minute, 10) * 30.0 + max(minute - 10, 0) * 6.0
        c = max(minute - 10, 0) * 24.0
        view.quality(quality(minute * 60_000, snapshot(t, c)))
    assert view.talk_share_10min() == pytest.approx(60 / 300)
    assert len(view.talk) <= 12  # only a window's worth of updates is kept


def test_monologue_runs_while_the_therapist_keeps_the_floor() -> None:
    view = CoachView("s1", "c1", lapse_ms=3000)
    view.quality(quality(7_000, snapshot(5, 0), [ipu(0, "therapist", 1000, 6000)]))
    assert view.monologue_s() == 6.0  # live talk grew at 7000: talking up to then
    view.quality(quality(8_000, snapshot(5, 0)))
    assert view.monologue_s() == 6.0  # a pause shorter than lapse_ms: still the monologue
    view.quality(quality(20_000, snapshot(12, 0), [ipu(1, "therapist", 7000, 12000)]))
    assert view.monologue_s() == 19.0  # still talking (live talk grew): up to at_ms
    # a backchannel of the client does not take the floor
    view.quality(quality(21_000, snapshot(13, 0.3), [ipu(2, "client", 12500, 12800, True)]))
    assert view.monologue_s() == 20.0
    # the client speaks past the therapist's last offset: the monologue is over
    view.quality(quality(30_000, snapshot(13, 6), [ipu(3, "client", 15000, 21000)]))
    assert view.monologue_s() == 0.0
    # the therapist's next IPU starts a new monologue
    view.quality(quality(31_000, snapshot(14, 6), [ipu(4, "therapist", 22000, 23000)]))
    assert view.monologue_s() == 31 - 22


def test_a_long_silence_ends_the_monologue() -> None:
    view = CoachView("s1", "c1", lapse_ms=3000)
    view.quality(quality(5_000, snapshot(4, 0), [ipu(0, "therapist", 0, 4000)]))
    view.quality(quality(8_000, snapshot(4, 0)))
    assert view.monologue_s() == 0.0  # 4 s of silence >= lapse_ms, nobody speaking
    view.quality(quality(9_000, snapshot(4.5, 0), [ipu(1, "therapist", 8000, 8500)]))
    assert view.monologue_s() == 1.0  # a new monologue from 8000, running to at_ms


def test_interruptions_and_the_clients_longest_stretch_come_from_the_snapshot() -> None:
    view = CoachView("s1", "c1")
    view.quality(quality(1000, snapshot(1, 1, made=(2, 1), client_longest_s=42.5)))
    assert view.to_dict()["interruptions_made"] == 3
    assert view.to_dict()["client_longest_uninterrupted_s"] == 42.5
    view.quality(quality(2000, snapshot(1, 1, made=None)))  # exclusive source: not visible
    assert view.to_dict()["interruptions_made"] is None


def test_nudges_once_per_episode_and_only_for_the_therapists_monologues() -> None:
    hub = CoachHub()
    sent: list[dict[str, Any]] = []
    with hub.subscribe("c1", "s1") as subscription:
        hub.apply(quality(1000, snapshot(1, 1), [ipu(0, "therapist", 0, 500),
                                                 ipu(1, "client", 600, 900)]))
        hub.apply(alert("therapist_dominance", 2000, talk_share=0.8))
        hub.apply(alert("therapist_dominance", 2000, talk_share=0.8))  # redelivered
        hub.apply(alert("long_monologue", 3000, participant_id="p1"))  # the client's
        hub.apply(alert("long_monologue", 3000, participant_id="t1"))
        hub.apply(alert("therapist_dominance.cleared", 4000, talk_share=0.5))
        while not subscription._queue.empty():
            event = subscription._queue.get_nowait()
            assert event is not None
            sent.append(event)
    nudges = [n for e in sent for n in e["nudges"]]
    assert [(n["kind"], n["state"]) for n in nudges] == [
        ("therapist_dominance", "started"), ("long_monologue", "started"),
        ("therapist_dominance", "ended")]
    assert all(n["text"] and "p1" not in n["text"] for n in nudges)
    # a new stream sees the active ones as started
    assert [n["kind"] for n in hub.view("c1", "s1")["nudges"]] == ["long_monologue"]
    assert hub.view("c2", "s1")["at_ms"] is None  # another clinic's session of that id
    assert all("t1" not in str(e) and "p1" not in str(e) for e in sent)  # no ids sent
    hub.end("c2", "s1", "report")  # another clinic's s1 ending leaves c1's
    assert [n["kind"] for n in hub.view("c1", "s1")["nudges"]] == ["long_monologue"]
    hub.end("c1", "s1", "report")
    assert hub.view("c1", "s1")["nudges"] == []


def test_frequent_updates_keep_a_bounded_history() -> None:
    view = CoachView("s1", "c1")
    for n in range(0, 12_000):  # 20 minutes of updates every 100 ms
        view.quality(quality(n * 100, snapshot(n * 0.05, n * 0.05)))
    assert len(view.talk) <= 130  # about one per 5 s over the window, not 6,000
    assert view.talk_share_10min() == pytest.approx(0.5)
