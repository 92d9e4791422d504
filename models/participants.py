"""Per-participant state of a session: pre-processing and presence (METRICS.md §2), and the
report's ``quality`` block built from it (§6: how far to trust the numbers)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.config import EngineConfig
from models.events import Role
from models.quantiles import QuantileSeries
from models.sources import LevelTrack, VoiceTrack, track_from_state
from models.speech import IpuBuilder

LOSS_UNIT = 1e-9  # percent


class Member:
    """One participant: IPU builder, presence and mute accounting, network quality."""

    __slots__ = (
        "builder", "covered_ms", "frames", "loss_n", "loss_sum", "muted_ms",
        "muted_since", "present_ms", "present_since", "role", "rtt", "segments", "track",
    )

    def __init__(self, role: Role, config: EngineConfig) -> None:
        self.role: Role = role
        self.builder = IpuBuilder(config.min_pause_ms, config.min_speech_ms)
        self.present_since = -1  # ms, or -1 while absent
        self.muted_since = -1  # ms, or -1 while unmuted
        self.present_ms = 0
        self.muted_ms = 0
        self.covered_ms = 0  # ms of frame batches received
        self.frames = False  # sent frame batches
        self.segments = False  # sent speech segments
        # Voice activity sent as state (voice events or level samples, §1), else None.
        self.track: VoiceTrack | LevelTrack | None = None
        self.rtt = QuantileSeries()
        # Sum of loss_pct readings in units of LOSS_UNIT, an integer so that the sum does not
        # depend on the order readings are added in (float addition does, in the last bit).
        self.loss_sum = 0
        self.loss_n = 0

    def to_state(self) -> list[Any]:
        """Checkpoint form (models/state_codec.py)."""
        return [self.role, self.builder.to_state(), self.present_since, self.muted_since,
                self.present_ms, self.muted_ms, self.covered_ms, self.frames, self.segments,
                None if self.track is None else self.track.to_state(), self.rtt.to_state(),
                self.loss_sum, self.loss_n]

    @classmethod
    def from_state(cls, state: Any, config: EngineConfig) -> Member:
        (role, builder, present_since, muted_since, present_ms, muted_ms, covered_ms, frames,
         segments, track, rtt, loss_sum, loss_n) = state
        member = cls(role, config)
        member.builder = IpuBuilder.from_state(builder, config.min_pause_ms,
                                               config.min_speech_ms)
        member.present_since, member.muted_since = present_since, muted_since
        member.present_ms, member.muted_ms, member.covered_ms = present_ms, muted_ms, covered_ms
        member.frames, member.segments = frames, segments
        member.track = track_from_state(track, config.level_hold_ms, config.level_voiced_dbov)
        member.rtt = QuantileSeries.from_state(rtt)
        member.loss_sum, member.loss_n = loss_sum, loss_n
        return member

    @property
    def available(self) -> bool:
        """Present and unmuted: may be expected to backchannel (§2.4)."""
        return self.present_since >= 0 and self.muted_since < 0


def source_of(member: Member) -> str:
    """The participant's voice-activity shape (§1) for the quality block: ``frames``,
    ``segments``, ``voice``, ``levels`` or ``none``."""
    if member.frames:
        return "frames"
    if member.segments:
        return "segments"
    if isinstance(member.track, VoiceTrack):
        return "voice"
    if isinstance(member.track, LevelTrack):
        return "levels"
    return "none"


def close_presence(member: Member, ts: int) -> None:
    """The participant leaves (or the session ends) at ``ts``: settle presence and mute time."""
    if member.muted_since >= 0:
        member.muted_ms += max(0, ts - member.muted_since)
        member.muted_since = -1
    if member.present_since >= 0:
        member.present_ms += max(0, ts - member.present_since)
        member.present_since = -1


def quality_block(
    members: Mapping[str, Member], duration: int, end: int, rtt_degraded_ms: int
) -> dict[str, Any]:
    """The §6 ``quality`` block at time ``end`` for a session of ``duration`` ms.

    Coverage is the share of ``D`` with voice activity from the participant: frame batches
    received, or time covered by level samples; for a segments or speaking-state source its
    presence (neither can show a gap in reporting); ``None`` with no voice activity at all.
    ``rtt_p95_ms`` is RTT alone (no jitter buffer); the session's
    is the worst participant's, and above ``rtt_degraded_ms`` marks ``low_confidence``.
    """
    participants: dict[str, Any] = {}
    worst_p95: float | None = None
    loss_sum, loss_n, muted = 0, 0, 0
    for pid, m in sorted(members.items()):
        present = m.present_ms + (max(0, end - m.present_since) if m.present_since >= 0 else 0)
        muted_ms = m.muted_ms + (max(0, end - m.muted_since) if m.muted_since >= 0 else 0)
        source = source_of(m)
        covered = (m.covered_ms if source == "frames"
                   else m.track.covered_ms if isinstance(m.track, LevelTrack)
                   else present if source != "none" else 0)
        p95 = m.rtt.quantile(0.95)
        if p95 is not None:
            worst_p95 = p95 if worst_p95 is None else max(worst_p95, p95)
        loss_sum += m.loss_sum
        loss_n += m.loss_n
        muted += muted_ms
        participants[pid] = {
            "role": m.role,
            "source": source,
            "coverage": (
                round(min(covered, duration) / duration, 4)
                if duration and source != "none"
                else None
            ),
            "present_s": round(present / 1000, 3),
            "muted_s": round(muted_ms / 1000, 3),
            "rtt_p95_ms": None if p95 is None else round(p95, 3),
            "loss_pct": round(m.loss_sum * LOSS_UNIT / m.loss_n, 3) if m.loss_n else None,
            "dropped_ipus": m.builder.dropped,
        }
    return {
        "participants": participants,
        "muted_s": round(muted / 1000, 3),
        "rtt_p95_ms": None if worst_p95 is None else round(worst_p95, 3),
        "loss_pct": round(loss_sum * LOSS_UNIT / loss_n, 3) if loss_n else None,
        "low_confidence": worst_p95 is not None and worst_p95 > rtt_degraded_ms,
    }
