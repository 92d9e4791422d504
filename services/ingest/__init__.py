"""The ingest service (issue 4): wire-v1 events over HTTP and WebSocket, and voice activity
from WebRTC audio (RFC 6464 levels or decoded audio and the VAD), published to
``rapport.events``. Audio never leaves the ingest process: only voice-activity metadata does.

The names below are imported when first used (PEP 562), so a command that needs only a part of
the ingest (``rapport vad`` reads files through its audio mode, services/ingest/audio.py) does
not load the web application, the store and their dependencies (about 0.6 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.ingest.app import add_ingest_routes, create_app
    from services.ingest.publisher import (
        KafkaPublisher,
        MemoryPublisher,
        Outgoing,
        Publisher,
        PublishError,
    )
    from services.ingest.service import INGEST, IngestConfig, IngestService

_WHERE = {
    "add_ingest_routes": "app", "create_app": "app",
    "KafkaPublisher": "publisher", "MemoryPublisher": "publisher", "Outgoing": "publisher",
    "Publisher": "publisher", "PublishError": "publisher",
    "INGEST": "service", "IngestConfig": "service", "IngestService": "service",
}

__all__ = [
    "INGEST",
    "IngestConfig",
    "IngestService",
    "KafkaPublisher",
    "MemoryPublisher",
    "Outgoing",
    "PublishError",
    "Publisher",
    "add_ingest_routes",
    "create_app",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:  # a submodule, or nothing: Python's import system takes it from here
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # once
    return value
