"""The ingest service (issue 4): wire-v1 events over HTTP and WebSocket, and voice activity
from WebRTC audio (RFC 6464 levels or decoded audio and the VAD), published to
``rapport.events``. Audio never leaves the ingest process: only voice-activity metadata does.
"""

from services.ingest.app import add_ingest_routes, create_app
from services.ingest.publisher import (
    KafkaPublisher,
    MemoryPublisher,
    Outgoing,
    Publisher,
    PublishError,
)
from services.ingest.service import INGEST, IngestConfig, IngestService

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
