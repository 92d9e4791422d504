"""Overrides for the embedded broker's quirks apply only to it (streams/kafka.py, points 6, 7;
docs/streaming.md, "Faust and aiokafka overrides"): on real Kafka the worker's consumer keeps
aiokafka's fetcher and Faust's pause of a full buffer. The fetch wait (point 1) is set on both:
10 ms on the embedded broker, 500 ms on Kafka, Faust's 1,500 ms only when asked (None)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from streams.app import WorkerConfig, build_app

FAUST_FETCH_WAIT_MS = 1500  # faust/transport/drivers/aiokafka.py, _create_worker_consumer


def _consumer_of(config: WorkerConfig) -> tuple[Any, Any]:
    """The app and the aiokafka consumer its worker would start with (nothing connects)."""
    app, _ = build_app(config)
    thread = app.consumer._thread

    async def create() -> Any:  # aiokafka wants a running loop
        consumer = thread._create_worker_consumer(app.transport)
        await consumer.stop()  # never started: releases nothing but its client
        return consumer

    return app, asyncio.run(create())


@pytest.mark.parametrize("embedded", [False, True])
def test_mock_cluster_overrides_apply_only_to_the_embedded_broker(tmp_path: Path,
                                                                  embedded: bool) -> None:
    settings: dict[str, Any] = dict(fetch_max_wait_ms=10, fetch_min_interval_ms=20) \
        if embedded else {}
    config = WorkerConfig(broker="kafka://127.0.0.1:9", data_dir=str(tmp_path),
                          embedded_broker=embedded, **settings)
    app, consumer = _consumer_of(config)
    hooks = app.transport_hooks
    assert consumer._fetch_max_wait_ms == (10 if embedded else 500)
    assert hooks.fetch_min_interval_ms == (20 if embedded else 0)
    assert hooks.unpaused_topics == ({config.topics.events} if embedded else frozenset())
    # Kept on both: inline delivery (3), the commit step and ceiling (2, 5).
    assert hooks.inline_topics == {config.topics.events}
    assert hooks.before_commit is not None and hooks.commit_ceiling is not None


def test_a_fetch_wait_of_none_leaves_fausts(tmp_path: Path) -> None:
    config = WorkerConfig(broker="kafka://127.0.0.1:9", data_dir=str(tmp_path),
                          fetch_max_wait_ms=None)
    _, consumer = _consumer_of(config)
    assert consumer._fetch_max_wait_ms == FAUST_FETCH_WAIT_MS
