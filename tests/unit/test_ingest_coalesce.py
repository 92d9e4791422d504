"""How the ingest packs events into Kafka records (services/ingest/publisher.py, coalesce): a
session's events together as JSON lines, within the limits, in order per session; dead-letter
records and keyless events untouched and in place."""

from __future__ import annotations

import random

import orjson

from services.ingest.publisher import GROUP_BYTES, GROUP_EVENTS, Outgoing, coalesce


def event(session: str, n: int, pad: int = 0) -> Outgoing:
    value = orjson.dumps({"session_id": session, "n": n, "pad": "x" * pad})
    return Outgoing("events", session.encode(), value)


def per_session(records: list[Outgoing]) -> dict[bytes | None, list[bytes]]:
    out: dict[bytes | None, list[bytes]] = {}
    for record in records:
        if record.destination == "events":
            out.setdefault(record.key, []).extend(record.value.split(b"\n"))
    return out


def test_a_sessions_events_share_one_record_in_their_order() -> None:
    records = [event("a", 0), event("b", 0), event("a", 1), event("b", 1), event("a", 2)]
    packed = coalesce(records)
    assert [(r.key, [orjson.loads(x)["n"] for x in r.value.split(b"\n")]) for r in packed] == [
        (b"a", [0, 1, 2]), (b"b", [0, 1])]


def test_dead_letters_and_keyless_events_stay_single_and_in_place() -> None:
    dead = Outgoing("dlq", b"a", b'{"type": "rejected"}')
    keyless = Outgoing("events", None, b'{"type": "speech"}')
    packed = coalesce([event("a", 0), dead, keyless, event("a", 1)])
    assert packed[1:] == [dead, keyless]
    assert packed[0].value.count(b"\n") == 1


def test_an_event_that_cannot_join_a_record_keeps_its_place_in_its_session() -> None:
    odd = Outgoing("events", b"a", b'{"session_id": "a",\n "n": 1}')
    packed = coalesce([event("a", 0), odd, event("a", 2)])
    assert [r.value.count(b'"n":') for r in packed] == [1, 1, 1]
    assert packed[1] == odd


def test_limits_split_a_session_into_several_records_in_order() -> None:
    many = [event("a", n) for n in range(GROUP_EVENTS * 2 + 1)]
    packed = coalesce(many)
    assert [r.value.count(b"\n") + 1 for r in packed] == [GROUP_EVENTS, GROUP_EVENTS, 1]
    big = [event("b", n, pad=GROUP_BYTES // 3) for n in range(4)]
    packed = coalesce(big)
    assert len(packed) == 2 and all(len(r.value) <= GROUP_BYTES for r in packed)
    assert per_session(packed)[b"b"] == [r.value for r in big]


def test_random_batches_keep_every_event_once_and_each_sessions_order() -> None:
    rng = random.Random(7)
    for _ in range(50):
        records = [event(rng.choice("abcde"), n, pad=rng.choice((0, 0, 40_000)))
                   for n in range(rng.randint(0, 300))]
        packed = coalesce(records, max_events=8, max_bytes=100_000)
        assert per_session(packed) == per_session(records)
        assert all(r.value.count(b"\n") < 8 and
                   (len(r.value) <= 100_000 or b"\n" not in r.value) for r in packed)
        assert len({r.key for r in records}) <= len(packed) <= len(records)
