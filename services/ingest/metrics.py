"""Prometheus metrics of the ingest service, served on ``/metrics`` of ``rapport ingest`` and
of the main job (docs/operations.md, "Metrics")."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram

INGEST_EVENTS = Counter(
    "rapport_ingest_events_total",
    "Events posted over HTTP or the WebSocket, by result (accepted: published to the events "
    "topic; rejected: refused, dead-lettered when possible).", ["result"])
INGEST_REJECTED = Counter(
    "rapport_ingest_rejected_total",
    "Events refused by the ingest, by reason (malformed_json, invalid, too_large; consent: "
    "a session of a client without recorded consent when the clinic requires it).",
    ["reason"])
LIMITED = Counter(
    "rapport_ingest_limited_total",
    "Requests and WebSocket messages refused with 429 by a per-token limit, by limit "
    "(max_open_sessions_per_token, events_per_s_per_token; docs/ingest.md).", ["limit"])
WEBRTC_PEERS = Gauge(
    "rapport_webrtc_peers",
    "Open WebRTC peer connections, by connection state (new, connecting, connected, "
    "disconnected, failed); closed ones leave the gauge.", ["state"])
LATE_LEVEL_FRAMES = Counter(
    "rapport_webrtc_late_level_frames_total",
    "Level frames dropped because their RTP packet arrived after their batch was published "
    "(levels mode; raise --jitter-hold-ms if this grows).")
AUDIO_GAPS = Counter(
    "rapport_webrtc_audio_gap_seconds_total",
    "Seconds of a participant's audio missing from the decoded frames (audio mode), by how "
    "the ingest filled them for the VAD: concealed (lost packets, up to 60 ms: the audio "
    "before repeated) or silence (longer: DTX, an outage).", ["fill"])
VAD_REAL_TIME_FACTOR = Histogram(
    "rapport_vad_real_time_factor",
    "CPU seconds the VAD spent per second of audio, per analysed chunk (audio mode).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))


def count_events(accepted: int, rejected: int,
                 reasons: Mapping[str, int] | None = None) -> None:
    if accepted:
        INGEST_EVENTS.labels("accepted").inc(accepted)
    if rejected:
        INGEST_EVENTS.labels("rejected").inc(rejected)
    for reason, count in (reasons or {}).items():
        INGEST_REJECTED.labels(reason).inc(count)


def peer_moved(old: str | None, new: str | None) -> str | None:
    """Move one peer from state ``old`` to ``new`` in the gauge (``None``: not counted, i.e.
    closed); returns ``new``."""
    if old == new:
        return new
    if old is not None:
        WEBRTC_PEERS.labels(old).dec()
    if new is not None:
        WEBRTC_PEERS.labels(new).inc()
    return new
