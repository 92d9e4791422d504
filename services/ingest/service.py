"""The ingest service's state, shared by its routes: configuration, publisher, tokens, the
pseudonymizer of participant ids, the live WebRTC sessions, counters."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from models.errors import ConfigError
from models.vad import VadConfig
from services.auth import TokenVerifier
from services.ingest import metrics
from services.ingest.consent import ConsentGate
from services.ingest.intake import MAX_EVENTS_PER_REQUEST, Checked
from services.ingest.limits import LimitExceeded, TokenLimits
from services.ingest.publisher import LiveEmitter, Publisher
from services.ingest.sessions import LiveSessions
from services.ingest.vad_backend import BACKENDS, VadBackend
from services.store.pseudonyms import Pseudonymizer

log = logging.getLogger(__name__)

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class IngestConfig:
    """Limits and timings of the ingest service (docs/ingest.md)."""

    max_body_bytes: int = MIB  # POST /v1/events body; larger is 413
    max_message_bytes: int = MIB  # one /v1/stream message; larger closes the socket (1009)
    max_events_per_request: int = MAX_EVENTS_PER_REQUEST  # per body or message; more is 413
    batch_ms: int = 1000  # activity batches from WebRTC, per participant
    frame_ms: int = 20  # frame of level batches (the VAD's frame in audio mode)
    hold_ms: int = 200  # wait this long after a level batch's end for reordered packets
    tick_s: float = 0.25  # how often level batches are checked for completion
    network_interval_s: float = 5.0  # network events per participant
    ice_servers: tuple[str, ...] = ()  # STUN/TURN URLs; none by default
    rtt_probe: bool = True  # send silence back when the offer allows, to measure RTT (RTCP)
    auth_timeout_s: float = 10.0  # a socket must authenticate within this
    body_timeout_s: float = 30.0  # a POST body must arrive within this; slower is 408
    # Per-token limits (services/ingest/limits.py; issue 16): more is 429 with Retry-After.
    max_open_sessions_per_token: int = 200  # started, not ended, not idle for session_idle_s
    events_per_s_per_token: float = 2000.0  # sustained rate ...
    event_burst_per_token: int = MAX_EVENTS_PER_REQUEST  # ... and burst (>= events/request)
    session_idle_s: float = 300.0  # an open session without events this long stops counting
    vad: VadConfig = field(default_factory=VadConfig)
    vad_backend: str = "auto"  # VAD of audio mode: auto, silero or rapport (vad_backend.py)
    vad_music_gate: bool = False  # the silero backend's music gate (models/vad_music.py)
    # Browser SDK (issue 18; docs/sdk.md): origins allowed to call (services/cors.py), the
    # directory /sdk/ serves (None: the repository's clients/js), the coach stream switch.
    cors_origins: tuple[str, ...] = ()
    sdk_dir: Path | None = None
    coach: bool = True
    coach_off_clinics: frozenset[str] = frozenset()  # clinics that switched the coach off

    def __post_init__(self) -> None:
        if self.max_open_sessions_per_token < 1:
            raise ConfigError("max_open_sessions_per_token", "must be at least 1")
        if self.events_per_s_per_token <= 0:
            raise ConfigError("events_per_s_per_token", "must be greater than 0")
        if self.event_burst_per_token < self.max_events_per_request:
            raise ConfigError("event_burst_per_token", "must be at least max_events_per_"
                              f"request ({self.max_events_per_request}), or a full request "
                              "could never pass")
        if self.session_idle_s <= 0 or self.body_timeout_s <= 0:
            raise ConfigError("session_idle_s" if self.session_idle_s <= 0
                              else "body_timeout_s", "must be greater than 0")
        if self.vad_backend not in BACKENDS:
            raise ConfigError("vad_backend", f"must be one of {', '.join(BACKENDS)}, "
                                             f"got {self.vad_backend!r}")


@dataclass(slots=True)
class IngestCounters:
    accepted: int = 0
    rejected: int = 0


class IngestService:
    """Everything the ingest routes share (one per process)."""

    def __init__(self, publisher: Publisher, tokens: TokenVerifier,
                 config: IngestConfig | None = None, *,
                 pseudonymize: Pseudonymizer | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.publisher = publisher
        self.tokens = tokens
        self.config = config or IngestConfig()
        self.clock = clock
        if pseudonymize is None:
            # Tests and embedded uses; the entry points pass the store's key (settings).
            log.warning("ingest without a configured pseudonym key: participant pseudonyms "
                        "use a random key of this process and change on restart")
            pseudonymize = Pseudonymizer(secrets.token_hex(32).encode())
        self.pseudonymize = pseudonymize
        self.emitter = LiveEmitter(publisher)
        # Issue 19: sessions of clients without recorded consent, when the clinic requires
        # it, are refused (services/ingest/consent.py); the token store knows the consents.
        self.consent = ConsentGate(tokens)
        self.sessions = LiveSessions(self.emitter, self.now_ms, refused=self.consent.refused)
        self.counters = IngestCounters()
        self.limits = TokenLimits(max_open_sessions=self.config.max_open_sessions_per_token,
                                  events_per_s=self.config.events_per_s_per_token,
                                  burst=self.config.event_burst_per_token,
                                  idle_s=self.config.session_idle_s, clock=time.monotonic)
        # One VAD backend per process (silero: one onnxruntime session for everyone).
        self.vad = VadBackend(self.config.vad_backend, self.config.vad,
                              music_gate=self.config.vad_music_gate)
        # Set once the VAD is warm (app.py): audio readers wait for it before their first
        # VAD call, so a participant arriving during the warm-up never blocks the event loop
        # on librosa's first-use compilation.
        self.vad_ready = asyncio.Event()

    def now_ms(self) -> int:
        """The session clock: this process's receive clock, epoch milliseconds."""
        return int(self.clock() * 1000)

    def count(self, accepted: int, rejected: int,
              reasons: Mapping[str, int] | None = None) -> None:
        """Events accepted and rejected (``reasons``: rejected ones by reason)."""
        self.counters.accepted += accepted
        self.counters.rejected += rejected
        metrics.count_events(accepted, rejected, reasons)


    def take_events(self, token_id: str, count: int) -> LimitExceeded | None:
        """The token's event rate limit for a request of ``count`` events (counted when
        refused)."""
        refused = self.limits.take_events(token_id, count)
        if refused is not None:
            self.refused(token_id, refused)
        return refused

    def reserve_sessions(self, token_id: str, checked: Checked) -> LimitExceeded | frozenset[str]:
        """The token's open-session limit for a checked request (counted when refused)."""
        reserved = self.limits.reserve(token_id, checked.starts, checked.ends)
        if isinstance(reserved, LimitExceeded):
            self.refused(token_id, reserved)
        return reserved

    def refused(self, token_id: str, refused: LimitExceeded) -> None:
        metrics.LIMITED.labels(refused.limit).inc()
        log.info("token %s over its limit %s: %s", token_id, refused.limit, refused.message)


INGEST = web.AppKey("ingest", IngestService)
