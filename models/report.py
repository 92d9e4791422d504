"""Running tallies of a session and the report built from them (METRICS.md §6, §10).

Tallies hold only counters and bounded quantile series, so a session's state does not grow
with its length. :func:`build_report` turns them into the stable §10 schema; it serves both the
live snapshot and the final report.
"""

from __future__ import annotations

import math
from typing import Any

from models.events import Role
from models.quantiles import QuantileSeries
from models.state_codec import StateError

SCHEMA_VERSION = 1


class RoleTally:
    """Per-role accumulators (participants of one role are summed, §6)."""

    __slots__ = (
        "backchannels",
        "completed_turns",
        "corrected_latency",
        "exposure_ms",
        "gaps",
        "interrupted",
        "lapses_broken",
        "lapses_preceded",
        "latency",
        "longest_monologue_ms",
        "pauses",
        "successful",
        "talk_ms",
        "turn_ms",
        "turns",
        "unsuccessful",
    )

    def __init__(self) -> None:
        self.talk_ms = 0
        self.turns = 0
        self.turn_ms = 0  # summed duration of completed turns
        self.completed_turns = 0
        self.lapses_preceded = 0  # lapses (§6) this role spoke before
        self.lapses_broken = 0  # lapses this role broke
        self.longest_monologue_ms = 0
        self.backchannels = 0
        # §6: every other participant's talk heard by each member while present and unmuted,
        # summed over the role's members (backchannels_per_min's denominator).
        self.exposure_ms = 0
        self.latency = QuantileSeries()
        self.corrected_latency = QuantileSeries()
        self.pauses = QuantileSeries()
        self.gaps = QuantileSeries()
        self.successful = 0
        self.unsuccessful = 0
        self.interrupted = 0

    _COUNTS = ("talk_ms", "turns", "turn_ms", "completed_turns", "lapses_preceded",
               "lapses_broken", "longest_monologue_ms", "backchannels", "exposure_ms",
               "successful", "unsuccessful", "interrupted")
    _SERIES = ("latency", "corrected_latency", "pauses", "gaps")

    def to_state(self) -> list[Any]:
        """Checkpoint form (models/state_codec.py): the counters, then the series."""
        return [*(getattr(self, name) for name in self._COUNTS),
                *(getattr(self, name).to_state() for name in self._SERIES)]

    @classmethod
    def from_state(cls, state: Any) -> RoleTally:
        tally = cls()
        counts, series = state[:len(cls._COUNTS)], state[len(cls._COUNTS):]
        if len(series) != len(cls._SERIES):
            raise StateError("role tally: wrong number of fields")
        for name, value in zip(cls._COUNTS, counts, strict=True):
            setattr(tally, name, value)
        for name, value in zip(cls._SERIES, series, strict=True):
            setattr(tally, name, QuantileSeries.from_state(value))
        return tally


class SessionTally:
    """Session-level accumulators."""

    __slots__ = (
        "collisions",
        "interruptions",
        "lapses",
        "longest_lapse_ms",
        "overlap_ms",
        "roles",
        "speaker_changes",
        "speech_union_ms",
    )

    def __init__(self) -> None:
        # "other" is created when such a participant joins: most sessions never need it.
        self.roles: dict[Role, RoleTally] = {
            "therapist": RoleTally(),
            "client": RoleTally(),
        }
        self.speaker_changes = 0
        self.overlap_ms = 0
        self.speech_union_ms = 0
        self.collisions = 0
        self.lapses = 0
        self.longest_lapse_ms = 0
        # (by_role, of_role) -> [successful, unsuccessful]
        self.interruptions: dict[tuple[str, str], list[int]] = {}

    def to_state(self) -> list[Any]:
        """Checkpoint form (models/state_codec.py); roles in their order of creation."""
        return [[[role, tally.to_state()] for role, tally in self.roles.items()],
                self.speaker_changes, self.overlap_ms, self.speech_union_ms, self.collisions,
                self.lapses, self.longest_lapse_ms,
                [[by, of, counts] for (by, of), counts in self.interruptions.items()]]

    @classmethod
    def from_state(cls, state: Any) -> SessionTally:
        tally = cls()
        (roles, tally.speaker_changes, tally.overlap_ms, tally.speech_union_ms,
         tally.collisions, tally.lapses, tally.longest_lapse_ms, interruptions) = state
        tally.roles = {role: RoleTally.from_state(value) for role, value in roles}
        tally.interruptions = {(by, of): list(counts) for by, of, counts in interruptions}
        return tally


def _s(ms: float) -> float:
    """Milliseconds -> seconds, rounded to 3 decimals (§10)."""
    return round(ms / 1000.0, 3)


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


# Fields that need simultaneous speech, None for an exclusive source (§1).
_OVERLAP_ROLE_FIELDS = ("backchannels", "backchannels_per_min", "interruptions_made",
                        "interrupted")
_OVERLAP_SESSION_FIELDS = ("overlap_s", "collisions", "interruption_asymmetry",
                           "interruptions")


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def balance_index(shares: list[float]) -> float | None:
    """§6 ``balance_index``: ``1 - |2*share_T - 1|`` for two roles; for more, the normalized
    entropy of the shares. ``shares[0]`` is the therapist's."""
    if not shares:
        return None
    if len(shares) == 2:
        return 1.0 - abs(2.0 * shares[0] - 1.0)
    entropy = -sum(p * math.log(p) for p in shares if p > 0)
    return entropy / math.log(len(shares))


def build_report(
    *,
    session_id: str,
    clinic_id: str | None,
    duration_ms: int,
    tally: SessionTally,
    roles_present: set[Role],
    quality: dict[str, Any],
    alerts: list[dict[str, Any]],
    final: bool,
    exclusive: bool = False,
) -> dict[str, Any]:
    """The §10 report. Role keys: therapist and client always, other when present.

    ``exclusive`` (a dominant-speaker source, §1): every field that needs simultaneous speech
    is ``None``, since such a source cannot show it (``quality.overlap_visible`` says so)."""
    roles: list[Role] = ["therapist", "client"]
    if "other" in roles_present:
        roles.append("other")
    total_talk = sum(tally.roles[r].talk_ms for r in roles)
    low_confidence = bool(quality.get("low_confidence"))
    role_reports: dict[str, Any] = {}
    for role in roles:
        t = tally.roles[role]
        share = t.talk_ms / total_talk if total_talk else None
        completed = t.completed_turns
        role_reports[role] = {
            "talk_s": _s(t.talk_ms),
            "talk_share": _r(share),
            "session_share": _r(t.talk_ms / duration_ms) if duration_ms else None,
            "turns": t.turns,
            "mean_turn_s": _s(t.turn_ms / completed) if completed else None,
            "longest_monologue_s": _s(t.longest_monologue_ms),
            "backchannels": t.backchannels,
            "backchannels_per_min": (
                _r(t.backchannels / (t.exposure_ms / 60_000.0)) if t.exposure_ms else None
            ),
            "response_latency_ms": {
                "median": _ms(t.latency.quantile(0.5)),
                "p90": _ms(t.latency.quantile(0.9)),
                "corrected_median": _ms(t.corrected_latency.quantile(0.5)),
                "corrected_p90": _ms(t.corrected_latency.quantile(0.9)),
                "count": len(t.latency),
                "low_confidence": low_confidence,
            },
            "interruptions_made": {
                "successful": t.successful,
                "unsuccessful": t.unsuccessful,
                "low_confidence": low_confidence,
            },
            "interrupted": t.interrupted,
            "pauses": {"count": len(t.pauses), "median_ms": _ms(t.pauses.quantile(0.5))},
            "gaps": {"count": len(t.gaps), "median_ms": _ms(t.gaps.quantile(0.5))},
        }
    shares = [tally.roles[r].talk_ms / total_talk for r in roles] if total_talk else []
    i_tc = sum(tally.interruptions.get(("therapist", "client"), [0, 0]))
    i_ct = sum(tally.interruptions.get(("client", "therapist"), [0, 0]))
    per_10min = 600_000.0 / duration_ms if duration_ms else None
    directions: dict[str, Any] = {}
    counts = {("therapist", "client"): [0, 0], ("client", "therapist"): [0, 0]}
    counts.update(tally.interruptions)
    for (by, of), (succ, unsucc) in sorted(counts.items()):
        directions[f"{by}_to_{of}"] = {
            "successful": succ,
            "unsuccessful": unsucc,
            "per_10min": _r((succ + unsucc) * per_10min) if per_10min is not None else None,
        }
    speech_ms = min(tally.speech_union_ms, duration_ms)
    silence_ms = duration_ms - speech_ms
    session: dict[str, Any] = {
        "balance_index": _r(balance_index(shares)),
        "speaker_changes": tally.speaker_changes,
        "turns_per_min": (
            _r(tally.speaker_changes / (duration_ms / 60_000.0)) if duration_ms else None
        ),
        "overlap_s": _s(tally.overlap_ms),
        "collisions": tally.collisions,
        "silence_s": _s(silence_ms),
        "silence_ratio": _r(silence_ms / duration_ms) if duration_ms else None,
        "lapses": {
            "count": tally.lapses,
            "longest_s": _s(tally.longest_lapse_ms) if tally.lapses else None,
            "preceded_by": {
                r: t.lapses_preceded for r, t in tally.roles.items() if t.lapses_preceded
            },
            "broken_by": {
                r: t.lapses_broken for r, t in tally.roles.items() if t.lapses_broken
            },
        },
        "interruption_asymmetry": _r((i_tc - i_ct) / (i_tc + i_ct)) if i_tc + i_ct else 0.0,
        "interruptions": directions,
    }
    if exclusive:
        for entry in role_reports.values():
            entry.update(dict.fromkeys(_OVERLAP_ROLE_FIELDS))
        session.update(dict.fromkeys(_OVERLAP_SESSION_FIELDS))
    return {
        "schema_version": SCHEMA_VERSION,
        "session_id": session_id,
        "clinic_id": clinic_id,
        "final": final,
        "duration_s": _s(duration_ms),
        "roles": role_reports,
        "session": session,
        "quality": quality,
        "alerts": alerts,
    }
