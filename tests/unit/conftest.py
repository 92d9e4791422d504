"""Unit tier: hand-built sessions checked against the metric contract (shared/METRICS.md).

Run the tier from the project root with::

    .venv/bin/pytest tests/unit          # add -q for a terse summary

The builders the test modules use are in ``enginekit`` (tests/unit/enginekit.py).
"""

from __future__ import annotations

import pytest
from enginekit import SID, start

from models.config import EngineConfig
from models.events import parse_event
from models.session import SessionEngine


@pytest.fixture
def tc_engine() -> SessionEngine:
    """A default-config engine for session ``s1`` that has received its ``session.start``."""
    engine = SessionEngine(SID, EngineConfig())
    engine.ingest(parse_event(start()))
    return engine
