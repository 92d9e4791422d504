"""Consent enforced by the store and its consumer (issue 19, point 4) on SQLite and PostgreSQL:
a platform writing straight into Kafka bypasses the ingest, so the records of a session whose
client has no recorded consent, in a clinic that requires it, are dropped, counted and logged
with pseudonyms, and what the session already left (timeline, alerts) is deleted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from aiokafka import TopicPartition
from reportkit import BACKENDS, alert_record, ipu, open_store, quality_record, report_record

from services.reports.consumer import StoreConsumer
from services.store import ReportStore
from services.store.directory import ConsentMissing


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReportStore]:
    with open_store(request.param, tmp_path) as opened:
        opened.set_policy("c1", "tok", require_consent=True)
        yield opened


def test_the_store_refuses_sessions_of_clients_without_consent(store: ReportStore) -> None:
    store.add_alert(alert_record("s1", "c1", "long_silence", 5000))
    with pytest.raises(ConsentMissing) as raised:
        store.add_timeline(quality_record("s1", "c1", [ipu(1, "p1", "client", 0, 900)]))
    assert raised.value.clients == [store.pseudonymize("p1")]
    assert "p1" not in str(raised.value).replace(store.pseudonymize("p1"), "")
    with pytest.raises(ConsentMissing):
        store.save_report(report_record("s1", "c1", client="p1"))
    assert store.get_report("s1", "c1") is None
    assert store.get_timeline("s1", "c1") is None  # the alert it left is gone too
    # a therapist-only timeline, another clinic, and a consenting client are stored
    assert store.add_timeline(quality_record("s2", "c1", [ipu(1, "t1", "therapist", 0, 9)]))
    assert store.save_report(report_record("s1", "c2", client="p1"))
    store.set_consent("c1", "p1", True, by="tok")
    assert store.save_report(report_record("s1", "c1", client="p1"))


def test_the_consumer_drops_counts_and_logs_with_pseudonyms(
        store: ReportStore, caplog: pytest.LogCaptureFixture) -> None:
    consumer = StoreConsumer(store, "127.0.0.1:9")  # never started: only its write path
    messages = [SimpleNamespace(value=orjson.dumps(report_record(sid, "c1", client=client)),
                                offset=n)
                for n, (sid, client) in enumerate((("s1", "p1"), ("s2", "p2")))]
    store.set_consent("c1", "p2", True, by="tok")
    with caplog.at_level(logging.WARNING, logger="services.reports.consumer"):
        assert asyncio.run(consumer._write(TopicPartition("rapport.reports", 0), messages))
    assert (consumer.stats.written, consumer.stats.no_consent) == (1, 1)
    assert sum(consumer.stats.invalid.values()) == 0
    assert store.get_report("s1", "c1") is None and store.get_report("s2", "c1") is not None
    logged = caplog.text
    assert store.pseudonymize("p1") in logged and "'p1'" not in logged
