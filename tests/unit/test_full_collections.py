"""Scheduled full garbage collections (streams/full_collections.py): after ``schedule()``
CPython no longer runs full collections by itself, and ``collect()`` frees what they would."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from streams import full_collections


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def scheduled() -> Iterator[None]:
    threshold = gc.get_threshold()
    full_collections.schedule()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("scheduled")
def test_full_collections_no_longer_run_on_their_own() -> None:
    assert gc.get_threshold()[2] == full_collections._NEVER
    assert gc.get_freeze_count() > 0  # start-up objects are out of every collection


@pytest.mark.usefixtures("scheduled")
def test_a_scheduled_collection_frees_garbage_cycles() -> None:
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    alive = weakref.ref(first)
    del first, second
    paused = full_collections.collect()
    assert alive() is None
    assert paused >= 0
