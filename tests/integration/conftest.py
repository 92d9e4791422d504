"""Integration tier: real parts over real connections — the embedded Kafka-protocol broker
(librdkafka's mock cluster) with real Kafka clients; PostgreSQL and Chromium as they land.

Run this tier alone with ``.venv/bin/pytest tests/integration``. Nothing here needs Docker.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.broker import EmbeddedBroker


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running
