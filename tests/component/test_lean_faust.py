"""The worker's fillings of Faust's extension points (streams/lean_faust.py): its topics
decode records exactly as Faust's ``raw`` codec with ``bytes`` types does, and its Monitor
keeps the statistics Faust reads once per commit while skipping the per-record ones."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
import pytest
from faust.types import TP

from streams.app import WorkerConfig, build_app
from streams.lean_faust import QuietMonitor, RawBytes

KEYS_AND_VALUES = [(b"clinic-1 s-1", b'{"type":"session.start"}'), (None, b""),
                   (b"k", None), (b"\x00\xff\n", b"\xc3\x28 not utf-8")]


def _message(key: bytes | None, value: bytes | None) -> Any:
    return faust.types.Message(topic="rapport.events", partition=3, offset=17,
                               timestamp=1.5, timestamp_type=0, headers=[], key=key,
                               value=value, checksum=None)


@pytest.fixture()
def app(tmp_path: Any) -> Any:
    worker_app, _ = build_app(WorkerConfig(data_dir=str(tmp_path)))
    return worker_app


@pytest.mark.parametrize(("key", "value"), KEYS_AND_VALUES)
def test_the_worker_topics_decode_as_the_raw_codec_does(app: Any, key: bytes | None,
                                                        value: bytes | None) -> None:
    faust_raw = faust.Schema(key_type=bytes, value_type=bytes, key_serializer="raw",
                             value_serializer="raw", allow_empty=True)
    ours = RawBytes()
    ours.allow_empty = True

    async def decode(schema: Any) -> tuple[Any, Any]:
        event = await schema.decode(app, _message(key, value), propagate=True)
        return event.key, event.value

    assert asyncio.run(decode(ours)) == asyncio.run(decode(faust_raw)) == (key, value)


def test_the_worker_input_topic_uses_the_raw_schema(app: Any) -> None:
    assert isinstance(app.topic("rapport.events").schema, faust.Schema)  # sanity
    agent = next(iter(app.agents.values()))
    assert isinstance(agent.channel.schema, RawBytes)


def test_the_monitor_skips_per_record_statistics_and_keeps_commits(app: Any) -> None:
    monitor = app.monitor
    assert isinstance(monitor, QuietMonitor)
    tp = TP("rapport.events", 3)
    message = _message(b"k", b"v")
    monitor.on_message_in(tp, 17, message)
    assert monitor.on_stream_event_in(tp, 17, object(), object()) is None
    monitor.on_message_out(tp, 17, message)
    assert monitor.messages_received_total == 0 and monitor.events_total == 0
    monitor.on_tp_commit({tp: 18})
    monitor.track_tp_end_offset(tp, 40)
    assert monitor.tp_committed_offsets[tp] == 18 and monitor.tp_end_offsets[tp] == 40


@pytest.mark.parametrize("size", [None, 5_000])
def test_the_stream_buffer_holds_what_a_fetch_brings(tmp_path: Any, size: int | None) -> None:
    # Faust's default (4,096) is overfilled by one fetch on real Kafka (1 MB per partition),
    # which pauses the partitions and makes the fetch loop sleep a second (streams/app.py).
    settings = {} if size is None else {"stream_buffer_max": size}
    worker_app, _ = build_app(WorkerConfig(data_dir=str(tmp_path), **settings))
    agent = next(iter(worker_app.agents.values()))
    queue = agent.channel.clone().queue
    assert worker_app.conf.stream_buffer_maxsize == queue.maxsize == (size or 16_384)
