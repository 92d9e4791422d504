"""Benchmark of the metric engine (issue "Rapport core"). Prints, in one run:

1. End-to-end throughput of ``rapport analyze --json`` (a subprocess: process start, JSON
   parsing, validation, engine, report output all included) on simulated sessions with 20 ms
   frames in 1 s batches, in frames/s. Target: >= 2,000,000.
2. The same analysis in-process with Rapport's frame path (C-level string scans) against a
   naive per-frame Python loop, the comparison named in the issue (naive: ~0.7 M frames/s).
3. Memory per active session with 10,000 concurrent sessions (RSS growth / sessions, and the
   pickled state size a Faust table would store). Target: < 16 KiB.
4. How per-session memory evolves with session age (tracemalloc, 100 sessions): it grows only
   by the quantile samples (METRICS.md §10 keeps every one). Targets: under 48 KiB at 50 min,
   and a mean over a 50-minute session's ages under 24 KiB.
5. ``rapport analyze`` wall time on one 50-minute session. Target: < 1 s.
6. Live lag per input shape (METRICS.md §9 "Final and live"): simulated 20-minute sessions
   sent as each shape platforms send (``rapport simulate --shape``), fed in arrival order with
   a quality update every 5 s of session time, as the workers do; for each update, how far
   the live numbers (``event_time_ms``) and the final ones (``final_through_ms``) trail the
   newest known input. The final lag is ``allowed_lateness_ms + max_segment_ms`` plus the
   rules' look-ahead; a ``session.start`` declaring a small ``max_segment_ms`` shortens it.
   Also how long after a speech onset the source makes it known ("onset known"): a segment
   source tells of an onset only when the segment ends, so its live numbers miss the speech
   in progress by that much more.

Usage: ``.venv/bin/python bench/engine.py [--quick] [--memory-only]`` (``--quick``: smaller
sizes, for a smoke run; ``--memory-only``: sections 3 and 4 only; ``--lag-only``: section 6
only; the README figures come from a full run).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import platform
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models import checkpoint  # noqa: E402
from models import events as wire  # noqa: E402
from models.analyzer import Analyzer  # noqa: E402
from models.event_order import known_time  # noqa: E402
from models.events import parse_json  # noqa: E402
from models.quantiles import percentile  # noqa: E402
from models.session import SessionEngine  # noqa: E402
from models.simulation import SimulationConfig, simulate  # noqa: E402

RAPPORT = [sys.executable, "-m", "services.cli"]


def write_sessions(path: Path, sessions: int, minutes: float, seed: int) -> tuple[int, int]:
    """Simulated sessions as JSONL; returns (lines, frames)."""
    lines = frames = 0
    config = SimulationConfig(sessions=sessions, minutes=minutes, seed=seed, style="mixed")
    with path.open("wb") as out:
        for event in simulate(config):
            out.write(orjson.dumps(event) + b"\n")
            lines += 1
            if event["type"] == "activity":
                frames += len(event["voiced"])
    return lines, frames


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def end_to_end(path: Path, frames: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(
            [*RAPPORT, "analyze", "--json", str(path)],
            cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        best = min(best, time.perf_counter() - started)
    return frames / best


def naive_voiced_runs(self: wire.Activity, level_table: bytes) -> list[tuple[int, int]]:
    """The per-frame implementation the issue warns about: every voiced frame is looked at by
    a Python loop and handed to the engine as its own 1-frame interval, so IPU building does
    per-frame work too (the builder merges touching frames)."""
    assert self.voiced is not None
    start, frame = self.start_ms, self.frame_ms
    return [
        (start + index * frame, start + (index + 1) * frame)
        for index, flag in enumerate(self.voiced)
        if flag == "1"
    ]


def in_process(path: Path, frames: int) -> float:
    started = time.perf_counter()
    analyzer = Analyzer()
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            analyzer.feed(parse_json(line), number)
    for _ in analyzer.finish_all():
        pass
    return frames / (time.perf_counter() - started)


def open_sessions(lines: Iterable[bytes]) -> tuple[dict[str, SessionEngine], int]:
    """Feed JSONL lines into one engine per session, keeping them all open (active)."""
    engines: dict[str, SessionEngine] = {}
    fed = 0
    for line in lines:
        event = parse_json(line)
        engine = engines.get(event.session_id)
        if engine is None:
            engine = engines[event.session_id] = SessionEngine(event.session_id)
        engine.ingest(event)
        engine.drain()
        fed += 1
    return engines, fed


def memory_per_session(sessions: int, minutes: float, tmp: Path) -> tuple[float, float, int]:
    """(RSS KiB per session, pickled state KiB per session, events fed) for ``sessions``
    engines each fed ``minutes`` of a simulated session, all open at once. The events are
    written to a file first so the simulator's own memory is not counted."""
    path = tmp / "concurrent.jsonl"
    config = SimulationConfig(sessions=sessions, minutes=minutes, seed=11, style="mixed",
                              session_stagger_ms=0)
    with path.open("wb") as out:
        for event in simulate(config):
            if event["type"] != "session.end":  # keep every session open: active sessions
                out.write(orjson.dumps(event) + b"\n")
    gc.collect()
    before = rss_bytes()
    with path.open("rb") as lines:
        engines, fed = open_sessions(lines)
    gc.collect()
    per_session_rss = (rss_bytes() - before) / sessions / 1024
    sample = list(engines.values())[: min(500, sessions)]
    started = time.perf_counter()
    dumps = [checkpoint.dump(e) for e in sample]
    dumped = time.perf_counter()
    for data in dumps:
        checkpoint.load(data)
    loaded = time.perf_counter()
    print(f"   checkpoint: dump {1e6 * (dumped - started) / len(sample):.0f} us, "
          f"load {1e6 * (loaded - dumped) / len(sample):.0f} us per session")
    size = sum(map(len, dumps)) / len(dumps) / 1024
    return per_session_rss, size, fed


def memory_by_age(sessions: int, ages: list[float], shape: str = "frames",
                  declared_ms: int | None = None) -> list[tuple[float, float]]:
    """tracemalloc KiB per session for sessions of each age (minutes), each age probed in a
    fresh process: interpreter-wide tables (interned strings, caches) that a previous run
    grew would otherwise be charged to whichever sessions trigger their next resize."""
    rows = []
    for minutes in ages:
        command = [sys.executable, __file__, "--age-probe", str(minutes), "--sessions",
                   str(sessions), "--probe-shape", shape]
        if declared_ms is not None:
            command += ["--probe-max-segment-ms", str(declared_ms)]
        probe = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
        rows.append((minutes, float(probe.stdout)))
    return rows


def probe_age(sessions: int, minutes: float, shape: str = "frames",
              declared_ms: int | None = None) -> float:
    """KiB per session for ``sessions`` engines fed ``minutes`` each (see memory_by_age), of
    one input ``shape``, their ``session.start`` declaring ``declared_ms`` as max_segment_ms.
    Parsing happens while tracing, so events in the lateness buffer count as session memory."""
    config = SimulationConfig(sessions=sessions, minutes=minutes, seed=5, style="mixed",
                              session_stagger_ms=0, shape=shape)  # type: ignore[arg-type]
    lines = [orjson.dumps(_declared(e, declared_ms)) for e in simulate(config)
             if e["type"] != "session.end"]
    gc.collect()
    tracemalloc.start()
    live, _ = open_sessions(lines)  # kept alive until the snapshot: that is what we measure
    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    del live
    # The interpreter's interned-string table is shared by all sessions and grows by doubling;
    # a probe that happens to trigger a doubling would charge all of it to 100 sessions. Its
    # amortized cost (a few dozen bytes per id) is inside the RSS figure of section 3.
    intern_line = _intern_call_line()
    kept = snapshot.filter_traces(
        [tracemalloc.Filter(False, wire.__file__, lineno=intern_line)]
    )
    return sum(stat.size for stat in kept.statistics("filename")) / sessions / 1024


def _declared(event: dict[str, Any], declared_ms: int | None) -> dict[str, Any]:
    if declared_ms is not None and event["type"] == "session.start":
        return {**event, "max_segment_ms": declared_ms}
    return event


def _intern_call_line() -> int:
    source = Path(wire.__file__).read_text().splitlines()
    return next(i for i, line in enumerate(source, 1) if "sys.intern(" in line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--memory-only", action="store_true",
                        help="only the memory measures (sections 3 and 4)")
    parser.add_argument("--lag-only", action="store_true", help="only the live lag (section 6)")
    parser.add_argument("--age-probe", type=float, metavar="MIN", help=argparse.SUPPRESS)
    parser.add_argument("--sessions", type=int, default=100, help=argparse.SUPPRESS)
    parser.add_argument("--probe-shape", default="frames", help=argparse.SUPPRESS)
    parser.add_argument("--probe-max-segment-ms", type=int, default=None,
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.age_probe is not None:
        kib = probe_age(args.sessions, args.age_probe, args.probe_shape,
                        args.probe_max_segment_ms)
        print(f"{kib:.2f}")
        return
    quick = args.quick
    machine = platform.processor() or platform.machine()
    print(f"# bench/engine.py  {time.strftime('%Y-%m-%d')}  {machine}  {os.cpu_count()} cores"
          f"  Python {platform.python_version()}")
    if args.lag_only:
        live_lag(quick)
        return
    if not args.memory_only:
        speed(quick)
    memory(quick)
    if not args.memory_only:
        live_lag(quick)


def _onsets_known_after(event: wire.Event, table: bytes) -> list[int]:
    """For each speech onset ``event`` reports, how long after the onset it is known."""
    if isinstance(event, wire.Speech):
        return [event.end_ms - event.start_ms]
    if isinstance(event, wire.Voice):
        return [0] if event.speaking else []
    if isinstance(event, wire.Activity):
        return [event.end_ms - a for a, _ in event.voiced_runs(table) if a > event.start_ms]
    if isinstance(event, wire.Levels):
        times, voiced = event.sample_times(), [level <= 50 for level in event.dbov]
        return [event.last_ms - times[i] for i in range(1, len(times))
                if voiced[i] and not voiced[i - 1]]
    return []


def _lags(shape: str, minutes: float, declared_ms: int | None
          ) -> tuple[list[int], list[int], list[int]]:
    """(live lags, final lags, onsets known after) in ms over the simulated sessions."""
    config = SimulationConfig(sessions=4, minutes=minutes, seed=3, style="mixed",
                              shape=shape, jitter_ms=1000)  # type: ignore[arg-type]
    engines: dict[str, SessionEngine] = {}
    newest: dict[str, int] = {}
    due: dict[str, int] = {}
    live: list[int] = []
    final: list[int] = []
    onsets: list[int] = []
    table = wire.level_translation(50)
    for event in simulate(config):
        if event["type"] == "session.start" and declared_ms is not None:
            event = {**event, "max_segment_ms": declared_ms}
        parsed = parse_json(orjson.dumps(event))
        sid = parsed.session_id
        engine = engines.get(sid)
        if engine is None:
            engine = engines[sid] = SessionEngine(sid)
        if not engine.ingest(parsed):
            continue
        onsets.extend(_onsets_known_after(parsed, table))
        newest[sid] = max(newest.get(sid, 0), known_time(parsed))
        if isinstance(parsed, wire.SessionEnd) or engine.start_ms is None:
            continue
        if newest[sid] >= due.get(sid, 0):
            due[sid] = newest[sid] + 5_000
            engine.snapshot()
            decided, settled = engine.live_decided_ms, engine.decided_ms
            if decided is not None and settled is not None and settled > engine.start_ms:
                live.append(newest[sid] - decided)
                final.append(newest[sid] - settled)
    return live, final, onsets


def _s(values: list[int]) -> str:
    if not values:
        return "     -      -"
    return f"{percentile(values, 0.5) / 1000:6.1f} {percentile(values, 0.95) / 1000:6.1f}"


def live_lag(quick: bool) -> None:
    """Section 6: live and final lag behind the newest known input, per shape."""
    minutes = 12.0 if quick else 20.0
    print(f"\n6. lag behind the newest input per shape (4 sessions x {minutes:g} min, "
          "a quality update every 5 s; median and p95 in s):")
    cases = [(shape, None) for shape in ("frames", "segments", "voice", "levels", "mixed")]
    cases += [("frames", 1_000), ("voice", 1_000)]
    for shape, declared in cases:
        live, final, onsets = _lags(shape, minutes, declared)
        label = shape + (f", max_segment_ms={declared}" if declared else "")
        print(f"   {label:30s} live {_s(live)}   final {_s(final)}   onset known {_s(onsets)}")


def speed(quick: bool) -> None:
    """Sections 1, 2 and 5: throughput and wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "sessions.jsonl"
        sessions, minutes = (4, 10.0) if quick else (20, 50.0)
        lines, frames = write_sessions(big, sessions, minutes, seed=1)
        size = big.stat().st_size / 2**20
        print(f"\n1. rapport analyze --json, end to end: {sessions} sessions x {minutes:g} min, "
              f"{lines} lines ({size:.0f} MiB), {frames / 1e6:.1f} M frames")
        fps = end_to_end(big, frames, repeats=1 if quick else 3)
        print(f"   {fps / 1e6:.2f} M frames/s (best of runs; target >= 2.00 M)")

        print("\n2. in process, same file: Rapport's frame path vs a naive per-frame loop")
        fast = in_process(big, frames)
        original = wire.Activity.voiced_runs
        wire.Activity.voiced_runs = naive_voiced_runs  # type: ignore[method-assign]
        try:
            naive = in_process(big, frames)
        finally:
            wire.Activity.voiced_runs = original  # type: ignore[method-assign]
        print(f"   Rapport  {fast / 1e6:.2f} M frames/s")
        print(f"   naive    {naive / 1e6:.2f} M frames/s   (ratio {fast / naive:.1f}x)")

        one = Path(tmp) / "one.jsonl"
        _, one_frames = write_sessions(one, 1, 50.0, seed=2)
        started = time.perf_counter()
        subprocess.run([*RAPPORT, "analyze", str(one)], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        print(f"\n5. rapport analyze on one 50-minute session ({one_frames / 1e6:.2f} M frames): "
              f"{wall:.2f} s wall (target < 1 s)")


def memory(quick: bool) -> None:
    """Sections 3 and 4: memory per active session."""
    count, age = (1_000, 2.0) if quick else (10_000, 3.0)
    print(f"\n3. {count} concurrent active sessions, each {age:g} min in:")
    with tempfile.TemporaryDirectory() as tmp:
        rss, pickled, fed = memory_per_session(count, age, Path(tmp))
    print(f"   {fed} events fed; {rss:.1f} KiB RSS per session (target < 16 KiB); "
          f"checkpointed state {pickled:.1f} KiB per session")

    ages = [1.0, 5.0] if quick else [1.0, 5.0, 15.0, 30.0, 50.0]
    sessions = 50 if quick else 100
    print(f"\n4. memory per session by age (tracemalloc, {sessions} sessions), frames:")
    _by_age(memory_by_age(sessions, ages))
    # Sources that report levels or speaking-state changes (the browser SDK, Daily, Agora,
    # LiveKit...) hold their events until the state horizon (allowed_lateness_ms + 60 s, the
    # longest a levels batch may span, behind the input; docs/metrics.md), each participant's
    # in one compact run (models/held_runs.py); less when session.start declares a smaller
    # max_segment_ms, as the browser SDK does (its events span at most one 500 ms batch;
    # METRICS.md §9).
    for shape in ("levels", "voice"):
        print(f"\n4b. the same, {shape} sessions, nothing declared:")
        _by_age(memory_by_age(sessions, ages, shape))
    probes = [15.0] if quick else [15.0, 50.0]
    print(f"\n4c. declaring max_segment_ms=10000 in session.start ({probes} min):")
    for shape in ("levels", "voice"):
        found = memory_by_age(sessions, probes, shape, 10_000)
        print(f"   {shape:8s} " + "  ".join(f"{m:3.0f} min {k:6.1f} KiB" for m, k in found))


def _by_age(rows: list[tuple[float, float]]) -> None:
    """Print memory by age and the steady-state mean (issue 14's two targets)."""
    for minutes, kib in rows:
        target = "  (target < 48 KiB)" if minutes == 50 else ""
        print(f"   {minutes:5.0f} min  {kib:6.1f} KiB{target}")
    # A clinic's concurrent sessions are spread over all ages: the steady-state mean is the
    # time average over one session's life (trapezoids between the measured ages).
    area = sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in itertools.pairwise(rows))
    print(f"   steady state (sessions spread over {rows[0][0]:g}-{rows[-1][0]:g} min): "
          f"{area / (rows[-1][0] - rows[0][0]):.1f} KiB per session (target < 24 KiB)")

if __name__ == "__main__":
    main()
