"""Checkpoints (crash safety of the streaming workers): restoring an engine's state at any
point and carrying on gives exactly the report and outputs of an uninterrupted run."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_properties import SESSION, sessions, wire_events, within_lateness

from models import checkpoint
from models.classified import Output
from models.config import EngineConfig
from models.events import parse_event
from models.session import SessionEngine


def _run(events: list[dict[str, Any]], restore_at: set[int]) -> tuple[Any, list[Output]]:
    engine = SessionEngine(SESSION, EngineConfig())
    outputs: list[Output] = []
    for index, raw in enumerate(events):
        if index in restore_at:
            engine = checkpoint.load(checkpoint.dump(engine))
        engine.ingest(parse_event(raw))
        outputs.extend(engine.drain())
    report = engine.finish()
    outputs.extend(engine.drain())
    return report, outputs


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sessions(), st.sampled_from(["frames", "segments"]), st.randoms(use_true_random=False),
       st.sets(st.integers(0, 400), max_size=6))
def test_restoring_anywhere_changes_nothing(session: dict[str, Any], encoding: str,
                                            rng: random.Random, restore_at: set[int]) -> None:
    events = within_lateness(wire_events(session, encoding), rng, duplicate_rate=0.1)
    assert _run(events, restore_at) == _run(events, set())


def test_version_and_corruption_fail_loudly() -> None:
    engine = SessionEngine("s", EngineConfig())
    data = checkpoint.dump(engine)
    assert isinstance(checkpoint.load(data), SessionEngine)
    with pytest.raises(checkpoint.CheckpointError, match="format 9 cannot be read"):
        checkpoint.load(data[:3] + bytes((9,)) + data[4:])
    # Version 1 held quantile sketches (before METRICS.md v1.1 §10): refused, not misread.
    with pytest.raises(checkpoint.CheckpointError, match="format 1 cannot be read"):
        checkpoint.load(data[:3] + bytes((1,)) + data[4:])
    with pytest.raises(checkpoint.CheckpointError, match="not a Rapport"):
        checkpoint.load(b"{}")
    with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
        checkpoint.load(data[:40])
