"""A full stream buffer on the worker's consumer (streams/kafka.py, point 7): the input
topic's partitions stay in the fetch, so Faust's fetch loop never finds every partition
paused and sleeps a second; other topics are taken out as Faust does."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from faust.types import TP

from streams import kafka

EVENTS = TP("rapport.events", 0)
OTHER = TP("rapport-sessions-changelog", 0)


@pytest.fixture
def consumer() -> kafka._Consumer:
    # Only the state Faust's flow control reads and writes; no transport or broker needed.
    instance = object.__new__(kafka._Consumer)
    instance._active_partitions = {EVENTS, OTHER}
    instance._paused_partitions = set()
    instance._buffered_partitions = set()
    instance.app = SimpleNamespace(
        in_recovery=False,
        transport_hooks=kafka.TransportHooks(unpaused_topics=frozenset({EVENTS.topic})))
    return instance


def test_an_input_partition_stays_in_the_fetch_when_its_buffer_is_full(
        consumer: kafka._Consumer) -> None:
    consumer.on_buffer_full(EVENTS)
    assert consumer._get_active_partitions() == {EVENTS, OTHER}


def test_other_partitions_leave_the_fetch_until_their_buffer_drains(
        consumer: kafka._Consumer) -> None:
    consumer.on_buffer_full(OTHER)
    assert consumer._get_active_partitions() == {EVENTS}
    consumer.on_buffer_drop(OTHER)
    assert consumer._get_active_partitions() == {EVENTS, OTHER}
