"""Server-side SVG charts of the report pages (issue 5): no JavaScript, no external assets.

- :func:`speech_timeline`: who spoke when, one lane per role, in rows of five minutes: speech
  units (IPUs, METRICS.md §2) with backchannels (§3) drawn thin, overlaps (§6 ``overlap_s``)
  banded, lapses (§6, mutual silences >= ``lapse_ms``) shaded, interruptions and collisions
  (§5) marked, and one marker per turn (§4) carrying ``data-turn="<role>"``.
- :func:`latency_histogram`: the distribution of observed response latencies (§4) of one
  responder role, from the stored speaker changes, with the report's median and p90.
- :func:`share_bar` and :func:`balance_gauge`: talk share per role and the balance index (§6).
- :func:`small_multiple`: one headline metric across a therapist's sessions.

Every text and attribute value goes through :func:`services.reports.html.esc`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from services.reports.html import clock, esc, fmt, session_href

ROLE_ORDER = ("therapist", "client", "other")
ROW_MS = 300_000
WIDTH = 960
LEFT = 84
PLOT = WIDTH - LEFT - 12
LANE = 16
LANE_GAP = 6
AXIS = 18


@dataclass(frozen=True, slots=True)
class Turn:
    """A turn (§4): ``role`` held the floor from ``start_ms`` to ``end_ms``."""

    participant: str
    role: str
    start_ms: int
    end_ms: int


def lanes(items: Iterable[dict[str, Any]]) -> list[str]:
    """Roles that spoke, therapist first."""
    roles = {str(i.get("role")) for i in items if i["kind"] == "ipu"}
    return [r for r in ROLE_ORDER if r in roles] + sorted(roles - set(ROLE_ORDER))


def turns(items: Sequence[dict[str, Any]]) -> list[Turn]:
    """The session's turns from its classified events: a turn begins at every speaker change
    (at the new speaker's onset) and ends at the previous speaker's offset before the next
    one (onset − latency); the first begins with its speaker's first non-backchannel IPU, the
    last ends with its speaker's last one (§4)."""
    speech = [i for i in items if i["kind"] == "ipu" and not i.get("backchannel")]
    changes = sorted((i for i in items if i["kind"] == "speaker_change"),
                     key=lambda i: (i["ts_ms"], i["n"]))
    if not speech:
        return []
    roles = {str(i["participant_id"]): str(i["role"]) for i in speech}
    first = str(changes[0]["from"]) if changes else str(speech[0]["participant_id"])
    own = [i for i in speech if i["participant_id"] == first]
    start = int(own[0]["start_ms"]) if own else int(speech[0]["start_ms"])
    found: list[Turn] = []
    speaker = first
    for change in changes:
        offset = int(change["ts_ms"]) - int(change.get("latency_ms") or 0)
        found.append(Turn(speaker, roles.get(speaker, str(change.get("from_role"))), start,
                          max(offset, start)))
        speaker, start = str(change["to"]), int(change["ts_ms"])
        roles.setdefault(speaker, str(change.get("to_role")))
    last = [int(i["end_ms"]) for i in speech if i["participant_id"] == speaker]
    found.append(Turn(speaker, roles.get(speaker, "other"), start, max([start, *last])))
    return found


def overlaps(items: Iterable[dict[str, Any]]) -> list[tuple[int, int]]:
    """Stretches where two or more participants speak (raw IPUs, backchannels included)."""
    edges: list[tuple[int, int]] = []
    for i in items:
        if i["kind"] == "ipu":
            edges += [(int(i["start_ms"]), 1), (int(i["end_ms"]), -1)]
    edges.sort()
    found: list[tuple[int, int]] = []
    speaking, since = 0, 0
    for t, step in edges:
        if speaking >= 2 and step < 0 and t > since:
            found.append((since, t))
        speaking += step
        if speaking >= 2:
            since = t
    return found


class _Rows:
    """Maps session-clock times to (row, x) in rows of :data:`ROW_MS`."""

    def __init__(self, start_ms: int, end_ms: int, lane_count: int) -> None:
        self.start = start_ms
        self.span = max(end_ms - start_ms, 1)
        self.row_ms = min(ROW_MS, max(self.span, 1000))
        self.count = max(1, math.ceil(self.span / self.row_ms))
        self.lanes = lane_count
        self.height = AXIS + lane_count * (LANE + LANE_GAP) + 10

    def x(self, offset_ms: int) -> float:
        return LEFT + PLOT * offset_ms / self.row_ms

    def pieces(self, t0: int, t1: int) -> Iterable[tuple[int, float, float]]:
        """(row, x, width) of [t0, t1) cut at row boundaries (at least 0.8 px wide)."""
        a = min(max(t0 - self.start, 0), self.span)
        b = min(max(t1 - self.start, a), self.span)
        row = min(int(a // self.row_ms), self.count - 1)
        while True:
            end = min(b, (row + 1) * self.row_ms)
            x0, x1 = self.x(a - row * self.row_ms), self.x(end - row * self.row_ms)
            yield row, x0, max(x1 - x0, 0.8)
            if end >= b or row + 1 >= self.count:
                return
            a, row = end, row + 1

    def at(self, t: int) -> tuple[int, float]:
        offset = min(max(t - self.start, 0), self.span)
        row = min(int(offset // self.row_ms), self.count - 1)
        return row, self.x(offset - row * self.row_ms)

    def lane_y(self, row: int, lane: int) -> float:
        return row * self.height + AXIS + lane * (LANE + LANE_GAP)


def speech_timeline(items: Sequence[dict[str, Any]], start_ms: int, end_ms: int) -> str:
    """The speech timeline SVG (see the module docstring)."""
    roles = lanes(items) or ["therapist", "client"]
    index = {role: k for k, role in enumerate(roles)}
    rows = _Rows(start_ms, end_ms, len(roles))
    band = len(roles) * (LANE + LANE_GAP) - LANE_GAP
    out: list[str] = []
    for row in range(rows.count):
        y = float(row * rows.height)
        out.append(f'<g class="axis"><line x1="{LEFT}" x2="{LEFT + PLOT}" y1="{y + AXIS - 4}" '
                   f'y2="{y + AXIS - 4}"/>')
        for tick in range(0, rows.row_ms, 60_000 if rows.row_ms > 60_000 else 10_000):
            x = rows.x(tick)
            out.append(f'<text x="{x:.1f}" y="{y + 10}">{clock(row * rows.row_ms + tick)}'
                       f'</text>')
        for role, k in index.items():
            out.append(f'<text class="lane" x="{LEFT - 6}" y="{rows.lane_y(row, k) + 12:.1f}">'
                       f'{esc(role)}</text>')
        out.append("</g>")
    for item in items:
        if item["kind"] == "lapse":
            title = (f"lapse {fmt((item['end_ms'] - item['start_ms']) / 1000, 1)} s at "
                     f"{clock(item['start_ms'] - start_ms)}: after "
                     f"{item.get('preceded_by_role')}, broken by {item.get('broken_by_role')}")
            for row, x, w in rows.pieces(int(item["start_ms"]), int(item["end_ms"])):
                out.append(f'<rect class="lapse" data-kind="lapse" x="{x:.1f}" '
                           f'y="{rows.lane_y(row, 0) - 2:.1f}" width="{w:.1f}" '
                           f'height="{band + 4}"><title>{esc(title)}</title></rect>')
    for t0, t1 in overlaps(items):
        for row, x, w in rows.pieces(t0, t1):
            out.append(f'<rect class="overlap" data-kind="overlap" x="{x:.1f}" '
                       f'y="{rows.lane_y(row, 0) - 2:.1f}" width="{w:.1f}" height="{band + 4}">'
                       f'<title>overlap {t1 - t0} ms at {clock(t0 - start_ms)}</title></rect>')
    for item in items:
        if item["kind"] != "ipu":
            continue
        role, bc = str(item["role"]), bool(item.get("backchannel"))
        lane = index.get(role, 0)
        kind = "backchannel" if bc else "ipu"
        title = (f"{role} {'backchannel' if bc else 'speech'} "
                 f"{clock(item['start_ms'] - start_ms)}–{clock(item['end_ms'] - start_ms)}")
        for row, x, w in rows.pieces(int(item["start_ms"]), int(item["end_ms"])):
            top = rows.lane_y(row, lane) + (LANE / 2 - 3 if bc else 2)
            out.append(f'<rect class="{kind} role-{esc(role)}" data-kind="{kind}" x="{x:.1f}" '
                       f'y="{top:.1f}" width="{w:.1f}" height="{6 if bc else LANE - 4}">'
                       f'<title>{esc(title)}</title></rect>')
    for turn in turns(items):
        row, x = rows.at(turn.start_ms)
        y = rows.lane_y(row, index.get(turn.role, 0))
        title = (f"{turn.role} turn {clock(turn.start_ms - start_ms)}–"
                 f"{clock(turn.end_ms - start_ms)} ({fmt((turn.end_ms - turn.start_ms) / 1000, 1)}"
                 " s)")
        out.append(f'<path class="turn role-{esc(turn.role)}" data-turn="{esc(turn.role)}" '
                   f'd="M{x:.1f} {y - 1:.1f}l-3 -5h6z"><title>{esc(title)}</title></path>')
    for item in items:
        if item["kind"] not in ("interruption", "collision"):
            continue
        role = str(item.get("by_role") or item.get("to_role") or "other")
        row, x = rows.at(int(item["ts_ms"]))
        y = rows.lane_y(row, index.get(role, 0)) + LANE + 1
        if item["kind"] == "interruption":
            title = (f"{role} interrupted {item.get('of_role')} ({item.get('outcome')}, "
                     f"overlap {item.get('overlap_ms')} ms) at {clock(item['ts_ms'] - start_ms)}")
            out.append(f'<path class="interruption {esc(item.get("outcome"))}" '
                       f'data-kind="interruption" d="M{x:.1f} {y:.1f}l-4 6h8z">'
                       f'<title>{esc(title)}</title></path>')
        else:
            title = f"collision (talk-over caused by delay) at {clock(item['ts_ms'] - start_ms)}"
            out.append(f'<circle class="collision" data-kind="collision" cx="{x:.1f}" '
                       f'cy="{y + 3:.1f}" r="3"><title>{esc(title)}</title></circle>')
    height = rows.count * rows.height
    return (f'<svg class="timeline" viewBox="0 0 {WIDTH} {height}" width="100%" '
            f'role="img" aria-label="speech timeline" xmlns="http://www.w3.org/2000/svg">'
            + "".join(out) + "</svg>")


LATENCY_EDGES = tuple(range(-1000, 2001, 250))


def latency_histogram(latencies: Sequence[int], median: float | None, p90: float | None,
                      role: str) -> str:
    """Observed response latencies of ``role`` as responder, 250 ms bins from −1 s to 2 s
    (negative: the response began in overlap), with the report's median and p90."""
    width, height, left, bottom = 440, 150, 34, 26
    bins = [0] * (len(LATENCY_EDGES) + 1)
    for value in latencies:
        k = sum(1 for edge in LATENCY_EDGES if value >= edge)
        bins[k] += 1
    top = max(bins) or 1
    step = (width - left - 8) / len(bins)
    plot_h = height - bottom - 30
    out = [f'<svg class="histogram" viewBox="0 0 {width} {height}" width="100%" role="img" '
           f'aria-label="{esc(role)} response latency" xmlns="http://www.w3.org/2000/svg">',
           f'<text class="axis-label" x="4" y="11">{esc(role)} responding: '
           f'{len(latencies)} · median {fmt(median, 0)} ms · p90 {fmt(p90, 0)} ms</text>']
    for k, count in enumerate(bins):
        h = plot_h * count / top
        x = left + k * step
        label = ("< −1 s" if k == 0 else f"≥ {LATENCY_EDGES[-1]} ms" if k == len(bins) - 1
                 else f"{LATENCY_EDGES[k - 1]}…{LATENCY_EDGES[k]} ms")
        out.append(f'<rect class="bar role-{esc(role)}" x="{x + 1:.1f}" '
                   f'y="{height - bottom - h:.1f}" width="{step - 2:.1f}" height="{h:.1f}">'
                   f'<title>{esc(label)}: {count}</title></rect>')

    def x_of(ms: float) -> float:
        k = min(max((ms - LATENCY_EDGES[0]) / 250 + 1, 0), len(bins))
        return left + k * step

    for mark, name in ((median, "median"), (p90, "p90")):
        if mark is not None:
            x = x_of(mark)
            out.append(f'<line class="marker {name}" x1="{x:.1f}" x2="{x:.1f}" y1="26" '
                       f'y2="{height - bottom}"/><text class="axis-label" x="{x:.1f}" y="24" '
                       f'text-anchor="middle">{name}</text>')
    for ms in (-1000, 0, 1000, 2000):
        x = x_of(ms)
        out.append(f'<text class="axis-label" x="{x:.1f}" y="{height - 8}" '
                   f'text-anchor="middle">{ms / 1000:g} s</text>')
    out.append("</svg>")
    return "".join(out)


def share_bar(shares: dict[str, float | None], threshold: float = 0.65) -> str:
    """Talk share per role as one stacked bar (§6), with the dominance alert's default."""
    width, height = 600, 44
    out = [f'<svg class="share" viewBox="0 0 {width} {height}" width="100%" role="img" '
           'aria-label="talk share" xmlns="http://www.w3.org/2000/svg">']
    x = 0.0
    for role, share in shares.items():
        if not share:
            continue
        w = width * share
        out.append(f'<rect class="role-{esc(role)}" x="{x:.1f}" y="4" width="{w:.1f}" '
                   f'height="22"><title>{esc(role)} {fmt(share * 100, 1)} %</title></rect>')
        if w > 70:
            out.append(f'<text class="inbar" x="{x + 6:.1f}" y="19">{esc(role)} '
                       f'{fmt(share * 100, 0)} %</text>')
        x += w
    tx = width * threshold
    out.append(f'<line class="marker" x1="{tx:.1f}" x2="{tx:.1f}" y1="0" y2="30"/>'
               f'<text class="axis-label" x="{tx + 3:.1f}" y="40">{fmt(threshold * 100, 0)} %: '
               'dominance alert default</text></svg>')
    return "".join(out)


def balance_gauge(balance: float | None) -> str:
    """The balance index on its 0 (one voice) … 1 (even) scale."""
    width, height = 300, 40
    out = [f'<svg class="gauge" viewBox="0 0 {width} {height}" width="300" role="img" '
           'aria-label="balance index" xmlns="http://www.w3.org/2000/svg">',
           f'<rect class="track" x="0" y="8" width="{width}" height="10"/>']
    if balance is not None:
        x = width * min(max(balance, 0.0), 1.0)
        out.append(f'<rect class="fill" x="0" y="8" width="{x:.1f}" height="10"/>'
                   f'<line class="marker" x1="{x:.1f}" x2="{x:.1f}" y1="4" y2="22"/>')
    out.append('<text class="axis-label" x="0" y="34">0 one voice</text>'
               f'<text class="axis-label" x="{width}" y="34" text-anchor="end">1 even</text>'
               "</svg>")
    return "".join(out)


def small_multiple(name: str, points: Sequence[tuple[str, str, str, float | None]]) -> str:
    """One metric over sessions, oldest first: ``points`` are (session id, clinic, date,
    value);
    each dot links to its session."""
    width, height, pad = 240, 96, 8
    values = [v for _, _, _, v in points if v is not None]
    out = [f'<svg class="multiple" viewBox="0 0 {width} {height}" width="{width}" role="img" '
           f'aria-label="{esc(name)}" xmlns="http://www.w3.org/2000/svg">']
    if not values:
        out.append(f'<text class="axis-label" x="{pad}" y="{height / 2}">no values</text></svg>')
        return "".join(out)
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = (width - 2 * pad) / max(len(points) - 1, 1)

    def y_of(v: float) -> float:
        return pad + 12 + (height - 2 * pad - 24) * (1 - (v - low) / span)

    line = [(pad + k * step, y_of(v)) for k, (_, _, _, v) in enumerate(points)
            if v is not None]
    out.append('<polyline class="trend" points="'
               + " ".join(f"{x:.1f},{y:.1f}" for x, y in line) + '"/>')
    for k, (session_id, clinic, day, value) in enumerate(points):
        if value is None:
            continue
        out.append(f'<a href="{esc(session_href(session_id, clinic))}"><circle class="dot" '
                   f'data-session="{esc(session_id)}" cx="{pad + k * step:.1f}" '
                   f'cy="{y_of(value):.1f}" r="3"><title>{esc(session_id)} {esc(day)}: '
                   f'{fmt(value, 3)}</title></circle></a>')
    out.append(f'<text class="axis-label" x="{pad}" y="10">max {fmt(high, 3)}</text>'
               f'<text class="axis-label" x="{pad}" y="{height - 2}">min {fmt(low, 3)}</text>'
               "</svg>")
    return "".join(out)
