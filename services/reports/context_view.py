"""Numbers in context on the report pages (issue 19 point 2): beside each metric, the
therapist's own median and the clinic's interquartile band, as a small bar (inline SVG: the
band shaded, the own median a tick, the session's value a dot) and as text.

The numbers come from :meth:`services.store.ReportStore.session_context` /
:meth:`~services.store.ReportStore.therapist_context` (models/context.py): the band is there
only when at least five therapists contribute; otherwise the page says how many did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.reports.html import esc, fmt, percent

Formatter = Callable[[Any], str]


def _digits(n: int) -> Formatter:
    return lambda value: fmt(value, n)


# metric -> (label, formatter); the order is the pages' order.
CONTEXT_LABELS: dict[str, tuple[str, Formatter]] = {
    "therapist_talk_share": ("therapist talk share", percent),
    "client_talk_share": ("client talk share", percent),
    "balance_index": ("balance index", _digits(2)),
    "turns_per_min": ("turns per minute", _digits(1)),
    "therapist_longest_monologue_s": ("longest therapist monologue (s)", _digits(1)),
    "therapist_latency_median_ms": ("therapist response latency, median (ms)", _digits(0)),
    "client_latency_median_ms": ("client response latency, median (ms)", _digits(0)),
    "therapist_backchannels_per_min": ("therapist backchannels / min", _digits(2)),
    "therapist_interruptions": ("therapist interruptions (successful)", _digits(1)),
    "client_interruptions": ("client interruptions (successful)", _digits(1)),
    "interruption_asymmetry": ("interruption asymmetry", _digits(2)),
    "silence_ratio": ("silence ratio", _digits(2)),
}

BAR_W, BAR_H, PAD = 180, 22, 6


def _numbers(entry: dict[str, Any]) -> list[float]:
    band = entry.get("band") or {}
    found = [entry.get("value"), entry.get("own_median"), band.get("p25"), band.get("p75")]
    return [float(v) for v in found if isinstance(v, int | float)]


def context_bar(name: str, entry: dict[str, Any]) -> str:
    """The metric's bar: band shaded, own median a tick, the value (if any) a dot."""
    values = _numbers(entry)
    out = [f'<svg class="context-bar" data-metric="{esc(name)}" viewBox="0 0 {BAR_W} {BAR_H}" '
           f'width="{BAR_W}" height="{BAR_H}" role="img" aria-label="{esc(name)} in context" '
           'xmlns="http://www.w3.org/2000/svg">',
           f'<rect class="track" x="{PAD}" y="{BAR_H / 2 - 2}" width="{BAR_W - 2 * PAD}" '
           'height="4"/>']
    if values:
        low, high = min(values), max(values)
        margin = (high - low) * 0.15 or abs(high) * 0.1 or 1.0
        low, high = low - margin, high + margin

        def x(v: float) -> float:
            return PAD + (BAR_W - 2 * PAD) * (v - low) / (high - low)

        band = entry.get("band")
        if band:
            x0, x1 = x(band["p25"]), x(band["p75"])
            out.append(f'<rect class="band" x="{x0:.1f}" y="3" width="{max(x1 - x0, 1.5):.1f}" '
                       f'height="{BAR_H - 6}"><title>clinic band (25th–75th percentile of '
                       f'therapist medians)</title></rect>')
        if isinstance(entry.get("own_median"), int | float):
            xm = x(entry["own_median"])
            out.append(f'<line class="own-median" x1="{xm:.1f}" x2="{xm:.1f}" y1="2" '
                       f'y2="{BAR_H - 2}"><title>own median</title></line>')
        if isinstance(entry.get("value"), int | float):
            out.append(f'<circle class="value" cx="{x(entry["value"]):.1f}" cy="{BAR_H / 2}" '
                       'r="4"><title>this session</title></circle>')
    out.append("</svg>")
    return "".join(out)


def band_text(entry: dict[str, Any], show: Formatter) -> str:
    band = entry.get("band")
    if band:
        return (f'{show(band["p25"])} – {show(band["p75"])} '
                f'<span class="muted">({int(entry["band_therapists"])} therapists)</span>')
    return (f'<span class="muted">not shown: {int(entry.get("band_therapists") or 0)} of '
            f'at least 5 therapists</span>')


def context_table(context: dict[str, Any] | None, *, session: bool) -> str:
    """The "in context" table of a session page (``session``: with this session's value) or
    of a therapist's trend page."""
    if not context:
        return '<p class="muted">No context available.</p>'
    metrics = context.get("metrics") or {}
    n = int(context.get("n") or 0)
    rows = []
    for name, (label, show) in CONTEXT_LABELS.items():
        entry = metrics.get(name)
        if entry is None:
            continue
        value = f'<td class="num">{show(entry.get("value"))}</td>' if session else ""
        rows.append(f'<tr data-metric="{esc(name)}"><td>{esc(label)}</td>{value}'
                    f'<td class="num">{show(entry.get("own_median"))} '
                    f'<span class="muted">({int(entry.get("own_sessions") or 0)})</span></td>'
                    f'<td class="num band-text">{band_text(entry, show)}</td>'
                    f"<td>{context_bar(name, entry)}</td></tr>")
    this = '<th class="num">this session</th>' if session else ""
    window = (f"the therapist's last {n} sessions before this one" if session
              else f"the therapist's last {n} sessions")
    return ('<p class="muted">Own median: over ' + esc(window) + ' (how many in brackets). '
            "Clinic band: the middle half (25th–75th percentile) of the clinic's therapists' "
            "medians over the same window, shown only when at least 5 therapists contribute. "
            "Usual is not the same as good: see what each metric means below.</p>"
            '<p class="legend"><span><i class="band"></i>clinic band</span>'
            '<span><i class="own-median"></i>own median</span>'
            + ('<span><i class="value"></i>this session</span>' if session else "")
            + f'</p><table class="context"><thead><tr><th>metric</th>{this}'
            '<th class="num">own median</th><th class="num">clinic band</th><th></th></tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table>')
