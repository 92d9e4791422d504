"""Readable, fixed-width summary of a session report (``rapport analyze`` without ``--json``)."""

from __future__ import annotations

from typing import Any


def _fmt(value: Any, unit: str = "", digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _count_median(stats: dict[str, Any]) -> str:
    return f'{stats["count"]} ({_fmt(stats["median_ms"], " ms", 0)})'


_ROWS: list[tuple[str, Any]] = [
    ("talk", lambda r: _fmt(r["talk_s"], " s")),
    ("talk share", lambda r: _pct(r["talk_share"])),
    ("turns", lambda r: _fmt(r["turns"])),
    ("mean turn", lambda r: _fmt(r["mean_turn_s"], " s")),
    ("longest monologue", lambda r: _fmt(r["longest_monologue_s"], " s")),
    ("backchannels /min", lambda r: f'{r["backchannels"]} ({_fmt(r["backchannels_per_min"])})'),
    ("latency median/p90", lambda r: (
        f'{_fmt(r["response_latency_ms"]["median"], digits=0)}/'
        f'{_fmt(r["response_latency_ms"]["p90"], digits=0)} ms')),
    ("corrected median", lambda r: _fmt(r["response_latency_ms"]["corrected_median"], " ms", 0)),
    ("interruptions made", lambda r: (
        f'{r["interruptions_made"]["successful"]} ok, '
        f'{r["interruptions_made"]["unsuccessful"]} failed')),
    ("interrupted", lambda r: _fmt(r["interrupted"])),
    ("pauses (median)", lambda r: _count_median(r["pauses"])),
    ("gaps (median)", lambda r: _count_median(r["gaps"])),
]


def format_summary(report: dict[str, Any]) -> str:
    """A short table per role, then the session line and quality flags."""
    roles = report["roles"]
    names = list(roles)
    width = 20
    lines = [
        f'session {report["session_id"]}  clinic {report["clinic_id"]}  '
        f'duration {report["duration_s"]:.1f} s',
        f'{"":<{width}}' + "".join(f"{name:>18}" for name in names),
    ]
    for label, cell in _ROWS:
        lines.append(f"{label:<{width}}" + "".join(f"{cell(roles[n]):>18}" for n in names))
    s = report["session"]
    lapses = s["lapses"]
    lines.append(
        f'balance {_fmt(s["balance_index"], digits=2)}  '
        f'speaker changes {s["speaker_changes"]} ({_fmt(s["turns_per_min"])}/min)  '
        f'overlap {_fmt(s["overlap_s"], " s")}  silence {_pct(s["silence_ratio"])}  '
        f'lapses {lapses["count"]}  collisions {s["collisions"]}  '
        f'interruption asymmetry {_fmt(s["interruption_asymmetry"], digits=2)}'
    )
    quality = report["quality"]
    flags = " (low confidence: RTT p95 above threshold)" if quality["low_confidence"] else ""
    lines.append(
        f'quality: RTT p95 {_fmt(quality["rtt_p95_ms"], " ms", 0)}, '
        f'loss {_fmt(quality["loss_pct"], " %", 2)}, muted {_fmt(quality["muted_s"], " s")}'
        f"{flags}"
    )
    alerts = report["alerts"]
    if alerts:
        listed = ", ".join(f'{a["type"]}@{a["ts_ms"] / 1000:.0f}s' for a in alerts[:6])
        more = f" (+{len(alerts) - 6} more)" if len(alerts) > 6 else ""
        lines.append(f"alerts: {listed}{more}")
    return "\n".join(lines) + "\n"
