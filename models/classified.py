"""What the engine emits while a session runs: classified events, alerts, apply-time rejections.

Classified events are emitted as soon as they are decidable (see docs/metrics.md, "When is an
event decided?"); ``ts_ms`` is on the session clock. Kinds:

- ``ipu``: an inter-pausal unit (§2) with ``participant_id``, ``role``, ``start_ms``,
  ``end_ms``, ``backchannel`` (§3) — the speech timeline.
- ``speaker_change``: §4 ``transition`` gap or between-speaker overlap, with observed and
  corrected latency.
- ``interruption``: §5, with ``direction``, ``outcome`` (successful/unsuccessful), ``overlap_ms``.
- ``collision``: §5 latency-induced talk-over.
- ``lapse``: §6 interior mutual silence >= ``lapse_ms``, who spoke before and who broke it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from models.errors import ValidationError
from models.events import Event

ClassifiedKind = Literal["ipu", "speaker_change", "interruption", "collision", "lapse"]
AlertType = Literal[
    "therapist_dominance", "interruption_burst", "long_monologue", "long_silence",
    "network_degraded",
]


@dataclass(frozen=True, slots=True)
class Classified:
    kind: ClassifiedKind
    ts_ms: int
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "ts_ms": self.ts_ms, **self.detail}


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """An alert raised (``alert``) or cleared (``alert.cleared``), once per episode (§7)."""

    alert: AlertType
    cleared: bool
    ts_ms: int
    detail: dict[str, Any]

    @property
    def kind(self) -> str:
        return f"{self.alert}.cleared" if self.cleared else self.alert

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "alert", "alert": self.kind, "ts_ms": self.ts_ms, **self.detail}


@dataclass(frozen=True, slots=True)
class Rejection:
    """An accepted event that turned out invalid when its turn came (e.g. its participant was
    never declared). Decided in canonical order, so it never depends on arrival order."""

    event: Event
    error: ValidationError
    tag: Any = None  # what the caller passed to ``SessionEngine.ingest`` (line, offset)


Output = Classified | AlertEvent | Rejection
