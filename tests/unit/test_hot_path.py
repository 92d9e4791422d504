"""The worker's per-event shortcuts (issue 15 point 5) give what the plain code gives: objects
built by ``maker`` equal their dataclass's, and ids and session keys remembered as valid never
let an invalid one through."""

from __future__ import annotations

import pickle
import random
from array import array
from dataclasses import FrozenInstanceError, fields

import pytest

from models.errors import ValidationError
from models.event_order import add_to_ranges, in_ranges
from models.events import Activity, maker, parse_event
from models.records import InputRecord, Source, new_input_record, new_source
from models.topics import parse_session_key


@pytest.mark.parametrize(("cls", "values"), [
    (Activity, ("s1", "p1", 3, 1_000, 20, "0110", None, None, "activity")),
    (Activity, ("s1", "p1", 4, 1_080, 10, None, b"\x05\x7f", "1-", "activity")),
    (Source, ("rapport.events", 2, 17, 1_700_000_000_000, b"{}", 1)),
    (InputRecord, (b"{}", 2, 17, 1_700_000_000_000, b"c1 s1", "rapport.events", False)),
])
def test_maker_builds_what_the_dataclass_builds(cls: type, values: tuple[object, ...]) -> None:
    made, plain = maker(cls)(*values), cls(*values)
    assert type(made) is cls
    assert made == plain and hash(made) == hash(plain)
    assert pickle.loads(pickle.dumps(made)) == plain
    with pytest.raises(FrozenInstanceError):
        setattr(made, fields(cls)[0].name, None)


def test_the_module_constructors_are_the_dataclasses() -> None:
    assert new_source("t", 1, 2, 3, b"x", 4) == Source("t", 1, 2, 3, b"x", 4)
    assert new_input_record(b"v", 1, 2, 3, None, "t", True) == \
        InputRecord(b"v", 1, 2, 3, key=None, topic="t", control=True)


def _activity(**changes: object) -> dict[str, object]:
    event: dict[str, object] = {"type": "activity", "session_id": "s1", "participant_id": "p1",
                                "seq": 1, "start_ms": 0, "frame_ms": 20, "voiced": "01"}
    event.update(changes)
    return event


@pytest.mark.parametrize(("field", "value"), [
    ("session_id", "s 1"), ("session_id", ""), ("session_id", 7), ("session_id", ["s1"]),
    ("participant_id", "x" * 129), ("participant_id", None),
    ("seq", -1), ("seq", True), ("seq", 1.0), ("start_ms", 2**53), ("start_ms", "0"),
])
def test_a_known_valid_id_does_not_let_an_invalid_value_through(field: str,
                                                                 value: object) -> None:
    assert parse_event(_activity()).session_id == "s1"  # s1 and p1 now remembered as valid
    with pytest.raises(ValidationError) as raised:
        parse_event(_activity(**{field: value}))
    assert raised.value.field == f"activity.{field}"


def test_a_parsed_session_key_is_the_same_and_bad_keys_still_fail() -> None:
    assert parse_session_key(b"c1 s1") == ("c1", "s1")
    assert parse_session_key(b"c1 s1") == ("c1", "s1")
    for bad in (b"s1", b"", None, b"c1 s 1", b"c\xff s1"):
        with pytest.raises(ValidationError):
            parse_session_key(bad)
        with pytest.raises(ValidationError):  # not remembered either
            parse_session_key(bad)


def test_seq_ranges_hold_exactly_the_seqs_added() -> None:
    rng = random.Random(15)
    for _ in range(500):
        ranges: array[int] = array("q")
        added: set[int] = set()
        for value in rng.sample(range(60), rng.randint(0, 40)):
            assert not in_ranges(ranges, value)
            add_to_ranges(ranges, value)
            added.add(value)
        assert list(ranges) == sorted(ranges)
        assert [v for v in range(-2, 63) if in_ranges(ranges, v)] == sorted(added)
