"""Tests of the session simulator (models/simulation.py) and ``rapport simulate``."""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.simulation import SimulationConfig, simulate, simulate_timed
from models.simulation_wire import VadTrack, deliver, render_voiced

Event = dict[str, Any]

_COMMON = {"type": str, "session_id": str}
_SCHEMA: dict[str, dict[str, type | tuple[type, ...]]] = {
    "session.start": {**_COMMON, "ts_ms": int, "clinic_id": str, "participants": list},
    "speech": {**_COMMON, "participant_id": str, "start_ms": int, "end_ms": int},
    "activity": {**_COMMON, "participant_id": str, "seq": int, "start_ms": int,
                 "frame_ms": int},
    "network": {**_COMMON, "participant_id": str, "ts_ms": int, "rtt_ms": int,
                "jitter_ms": int, "loss_pct": float},
    "participant.join": {**_COMMON, "participant_id": str, "role": str, "ts_ms": int},
    "participant.mute": {**_COMMON, "participant_id": str, "ts_ms": int},
    "participant.unmute": {**_COMMON, "participant_id": str, "ts_ms": int},
    "session.end": {**_COMMON, "ts_ms": int},
}


@cache
def _run(**kwargs: Any) -> tuple[Event, ...]:
    """Events of one config; cached because several tests read the same streams."""
    return tuple(simulate(SimulationConfig(**kwargs)))


def _emission_ms(event: Event, batch_end: int | None = None) -> int:
    if event["type"] == "activity":
        frames = event.get("voiced") or event["levels"]
        return int(event["start_ms"]) + len(frames) * int(event["frame_ms"])
    if event["type"] == "speech":
        assert batch_end is not None
        return batch_end
    return int(event["ts_ms"])


def _voiced_frames(events: Iterable[Event]) -> dict[str, set[int]]:
    """Absolute start times (ms) of voiced frames, per participant, from activity batches."""
    out: dict[str, set[int]] = defaultdict(set)
    for e in events:
        if e["type"] != "activity":
            continue
        flags = e["voiced"] if "voiced" in e else [lv <= 50 for lv in e["levels"]]
        f = e["frame_ms"]
        out[e["participant_id"]].update(
            e["start_ms"] + i * f for i, v in enumerate(flags) if v in ("1", True)
        )
    return out


def _talk_share(events: Iterable[Event]) -> float:
    """Therapist share of all voiced frames, computed straight from the activity batches."""
    frames = Counter[str]()
    for e in events:
        if e["type"] == "activity":
            role = "therapist" if e["participant_id"].endswith("-t") else "client"
            frames[role] += e["voiced"].count("1")
    return frames["therapist"] / (frames["therapist"] + frames["client"])


def _ipus(frames: set[int], frame_ms: int) -> list[tuple[int, int]]:
    """METRICS §2: runs of voiced frames, silences < 200 ms bridged, IPUs < 100 ms dropped."""
    runs: list[list[int]] = []
    for t in sorted(frames):
        if runs and t - runs[-1][1] < 200:
            runs[-1][1] = t + frame_ms
        else:
            runs.append([t, t + frame_ms])
    return [(a, b) for a, b in runs if b - a >= 100]


# --- determinism -------------------------------------------------------------------------


def test_same_seed_gives_identical_output() -> None:
    config = SimulationConfig(sessions=3, minutes=2, seed=11, style="mixed", jitter_ms=200,
                              duplicate_rate=0.05)
    first = [orjson.dumps(e) for e in simulate(config)]
    second = [orjson.dumps(e) for e in simulate(config)]
    assert first == second


def test_different_seed_gives_different_output() -> None:
    assert _run(minutes=2, seed=1) != _run(minutes=2, seed=2)
    # Not only the offsets and clinic: who speaks when differs too.
    a = sorted(len(v) for v in _voiced_frames(_run(minutes=2, seed=1)).values())
    b = sorted(len(v) for v in _voiced_frames(_run(minutes=2, seed=2)).values())
    assert a != b


# --- wire format v1 ------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["voiced", "levels", "speech"])
@pytest.mark.parametrize("style", ["balanced", "group", "laggy"])
def test_every_event_conforms_to_wire_v1(style: str, encoding: str) -> None:
    events = _run(sessions=3, minutes=4, seed=5, style=style, encoding=encoding)
    seen = Counter(e["type"] for e in events)
    assert seen["session.start"] == seen["session.end"] == 3
    for e in events:
        schema = dict(_SCHEMA[e["type"]])
        if e["type"] == "activity":
            schema[encoding if encoding != "speech" else "voiced"] = str if encoding == "voiced" \
                else list
        assert set(e) == set(schema), e
        for field, kind in schema.items():
            assert isinstance(e[field], kind) and not isinstance(e[field], bool), (field, e)
        assert e["session_id"].startswith("sim-")
        if e["type"] == "activity":
            assert e["frame_ms"] == 20
            if encoding == "voiced":
                assert set(e["voiced"]) <= {"0", "1"}
            else:
                assert all(isinstance(v, int) and 0 <= v <= 127 for v in e["levels"])
        elif e["type"] == "speech":
            assert e["start_ms"] < e["end_ms"]
        elif e["type"] == "session.start":
            assert e["clinic_id"] in {f"clinic-{k}" for k in range(1, 6)}
            roles = [p["role"] for p in e["participants"]]
            assert roles[0] == "therapist" and set(roles[1:]) == {"client"}
            assert all(p["participant_id"].startswith(e["session_id"] + "-")
                       for p in e["participants"])
        elif e["type"] == "network":
            assert e["rtt_ms"] > 0 and e["jitter_ms"] >= 0 and e["loss_pct"] >= 0
    assert encoding != "speech" or (seen["activity"] == 0 and seen["speech"] > 0)


def test_ids_are_pseudonymous_and_numbered() -> None:
    events = _run(sessions=2, minutes=1, seed=0, session_id_prefix="demo")
    starts = [e for e in events if e["type"] == "session.start"]
    assert sorted(e["session_id"] for e in starts) == ["demo-0001", "demo-0002"]
    pids = {p["participant_id"] for e in starts for p in e["participants"]}
    assert pids == {"demo-0001-t", "demo-0001-c1", "demo-0002-t", "demo-0002-c1"}


# --- ordering and batch tiling --------------------------------------------------------------


@pytest.mark.parametrize("style", ["balanced", "group", "interruptive"])
def test_output_is_in_emission_order_and_batches_tile_presence(style: str) -> None:
    events = _run(sessions=4, minutes=3, seed=9, style=style, batch_ms=600,
                  session_stagger_ms=20_000)
    emissions = [_emission_ms(e) for e in events]
    assert emissions == sorted(emissions)

    start: dict[str, int] = {}
    end: dict[str, int] = {}
    present: dict[str, int] = {}
    batches: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        if e["type"] == "session.start":
            start[e["session_id"]] = e["ts_ms"]
            for p in e["participants"]:
                present[p["participant_id"]] = e["ts_ms"]
        elif e["type"] == "participant.join":
            assert e["participant_id"] not in present
            present[e["participant_id"]] = e["ts_ms"]
        elif e["type"] == "session.end":
            end[e["session_id"]] = e["ts_ms"]
        elif e["type"] == "activity":
            assert e["participant_id"] in present, "activity before session.start or join"
            batches[e["participant_id"]].append(e)
    assert all(0 <= t < 20_000 for t in start.values())
    assert set(batches) == set(present)
    for pid, mine in batches.items():
        sid = mine[0]["session_id"]
        assert [b["seq"] for b in mine] == list(range(len(mine)))
        t = present[pid]
        assert (t - start[sid]) % 600 == 0, "batches stay aligned to the session's batch grid"
        for b in mine:
            assert b["start_ms"] == t, f"gap or overlap at {pid} seq {b['seq']}"
            assert len(b["voiced"]) == 30
            t += 600
        assert t == end[sid] == start[sid] + 180_000


def test_session_end_off_batch_grid_cuts_only_the_last_batch() -> None:
    events = _run(minutes=0.51, seed=2)  # 30.6 s: thirty full batches and one of 600 ms
    mine = [e for e in events if e["type"] == "activity" and e["participant_id"].endswith("-t")]
    assert [len(e["voiced"]) for e in mine] == [50] * 30 + [30]
    assert events[-1]["type"] == "session.end"
    assert events[-1]["ts_ms"] == events[0]["ts_ms"] + 30_600


def test_group_sessions_have_several_clients_and_late_joins() -> None:
    events = _run(sessions=12, minutes=6, seed=4, style="group")
    sizes = [len(e["participants"]) for e in events if e["type"] == "session.start"]
    assert set(sizes) <= {3, 4} and len(set(sizes)) == 2
    joins = [e for e in events if e["type"] == "participant.join"]
    assert joins and all(j["role"] == "client" for j in joins)
    for j in joins:
        first = next(e for e in events if e["type"] == "activity"
                     and e["participant_id"] == j["participant_id"])
        assert first["seq"] == 0 and first["start_ms"] == j["ts_ms"]


def test_muted_participants_send_only_silence_while_muted() -> None:
    events = _run(sessions=6, minutes=15, seed=3, style="client-narrative")
    mutes: dict[str, list[list[int]]] = defaultdict(list)
    for e in events:
        if e["type"] == "participant.mute":
            mutes[e["participant_id"]].append([e["ts_ms"], -1])
        elif e["type"] == "participant.unmute":
            assert mutes[e["participant_id"]][-1][1] == -1, "unmute without mute"
            mutes[e["participant_id"]][-1][1] = e["ts_ms"]
    assert sum(len(v) for v in mutes.values()) >= 2
    assert all(w[0] < w[1] for v in mutes.values() for w in v)
    voiced = _voiced_frames(events)
    for pid, windows in mutes.items():
        for a, b in windows:
            assert not any(a <= t < b for t in voiced[pid]), (pid, a, b)


# --- conversation model ---------------------------------------------------------------------


def test_style_shifts_therapist_talk_share() -> None:
    def shares(style: str) -> list[float]:
        return [_talk_share(_run(minutes=20, seed=s, style=style)) for s in range(4)]

    heavy, balanced, narrative = shares("therapist-heavy"), shares("balanced"), shares(
        "client-narrative")
    assert min(heavy) > max(narrative) + 0.2
    assert 0.62 < statistics.mean(heavy) < 0.8
    assert 0.4 < statistics.mean(balanced) < 0.6
    assert 0.2 < statistics.mean(narrative) < 0.38


def _overlap_onsets(events: tuple[Event, ...]) -> tuple[int, list[int]]:
    """(IPU onsets >= 500 ms into the other's IPU with >= 1 s overlap, observed gaps in ms)."""
    voiced = _voiced_frames(events)
    (t_pid,) = [p for p in voiced if p.endswith("-t")]
    (c_pid,) = [p for p in voiced if p.endswith("-c1")]
    ipus = {p: _ipus(voiced[p], 20) for p in (t_pid, c_pid)}
    long = sorted((a, b, p) for p in ipus for a, b in ipus[p] if b - a > 1000)
    interruptions = 0
    gaps = []
    for (a0, b0, p0), (a1, b1, p1) in itertools.pairwise(long):
        if p0 == p1:
            continue
        if a1 - a0 >= 500 and min(b0, b1) - a1 >= 1000:
            interruptions += 1
        elif b1 > b0:
            gaps.append(a1 - b0)
    return interruptions, gaps


def test_interruptive_style_overlaps_far_more_and_gaps_sit_near_200_ms() -> None:
    calm = [_overlap_onsets(_run(minutes=20, seed=s, style="balanced")) for s in range(2)]
    rude = [_overlap_onsets(_run(minutes=20, seed=s, style="interruptive")) for s in range(2)]
    assert sum(n for n, _ in rude) > 3 * max(1, sum(n for n, _ in calm))
    # Natural gap N(200, 250) plus the responder's RTT (40-150 ms base) at the ingest clock.
    median_gap = statistics.median(g for _, gaps in calm for g in gaps)
    assert 150 <= median_gap <= 500


def test_backchannels_are_short_and_inside_the_partners_speech() -> None:
    events = _run(minutes=20, seed=1, style="client-narrative")
    voiced = _voiced_frames(events)
    t_ipus = _ipus(voiced["sim-0001-t"], 20)
    c_ipus = _ipus(voiced["sim-0001-c1"], 20)

    def covered(t: int) -> bool:
        return any(a <= t < b for a, b in c_ipus)

    backchannels = [(a, b) for a, b in t_ipus
                    if b - a <= 1000 and covered(a - 400) and covered(b + 400)]
    client_minutes = sum(b - a for a, b in c_ipus) / 60_000
    assert 1.5 <= len(backchannels) / client_minutes <= 6


def test_vad_artefacts_are_ones_the_consumer_heals() -> None:
    events = _run(minutes=20, seed=8, style="balanced")
    for pid, frames in _voiced_frames(events).items():
        ordered = sorted(frames)
        runs: list[list[int]] = []
        for t in ordered:
            if runs and t == runs[-1][1]:
                runs[-1][1] = t + 20
            else:
                runs.append([t, t + 20])
        short_silences = [b[0] - a[1] for a, b in itertools.pairwise(runs)
                          if b[0] - a[1] <= 40]
        assert short_silences, f"{pid}: expected some 1-2 frame dropouts inside speech"
        blips = 0
        for k, (a, b) in enumerate(runs):
            if b - a > 60:
                continue
            before = a - runs[k - 1][1] if k else 10**9
            after = runs[k + 1][0] - b if k + 1 < len(runs) else 10**9
            if min(before, after) <= 40:
                continue  # a fragment of speech split by a dropout
            blips += 1
            assert min(before, after) >= 200, f"{pid}: blip at {a} would be bridged into speech"
        assert blips, f"{pid}: expected some spurious blips in silence"


def test_network_samples_follow_the_style() -> None:
    def rtts(style: str) -> list[int]:
        return [e["rtt_ms"] for e in _run(sessions=3, minutes=5, seed=6, style=style)
                if e["type"] == "network"]

    normal, laggy = rtts("balanced"), rtts("laggy")
    assert statistics.median(normal) < 160 < 240 < statistics.median(laggy)
    events = _run(sessions=3, minutes=5, seed=6, style="balanced")
    nets = [e for e in events if e["type"] == "network"]
    assert all(0 <= e["loss_pct"] <= 2 for e in nets)
    per_pid = defaultdict(list)
    for e in nets:
        per_pid[e["participant_id"]].append(e["ts_ms"])
    assert all(b - a == 5000 for ts in per_pid.values() for a, b in itertools.pairwise(ts))


# --- encodings ------------------------------------------------------------------------------


def test_levels_and_speech_carry_the_same_voiced_frames() -> None:
    kwargs: dict[str, Any] = {"sessions": 2, "minutes": 5, "seed": 21, "style": "group"}
    voiced = _voiced_frames(_run(encoding="voiced", **kwargs))
    levels_events = _run(encoding="levels", **kwargs)
    assert _voiced_frames(levels_events) == voiced
    for e in levels_events:
        if e["type"] == "activity":
            assert all(15 <= lv <= 45 or 60 <= lv <= 127 for lv in e["levels"])

    speech_events = _run(encoding="speech", **kwargs)
    from_speech: dict[str, set[int]] = defaultdict(set)
    batch_end: dict[str, int] = {}
    starts = {e["session_id"]: e["ts_ms"] for e in speech_events if e["type"] == "session.start"}
    last_emission = 0
    for e in speech_events:
        if e["type"] != "speech":
            last_emission = max(last_emission, _emission_ms(e))
            continue
        assert (e["end_ms"] - e["start_ms"]) % 20 == 0
        from_speech[e["participant_id"]].update(range(e["start_ms"], e["end_ms"], 20))
        # A piece never crosses a batch boundary and is emitted at its batch's end.
        origin = starts[e["session_id"]]
        first_batch = (e["start_ms"] - origin) // 1000
        assert (e["end_ms"] - 1 - origin) // 1000 == first_batch
        emission = origin + (first_batch + 1) * 1000
        assert emission >= last_emission
        last_emission = emission
        batch_end[e["participant_id"]] = emission
    assert {p: f for p, f in from_speech.items() if f} == {p: f for p, f in voiced.items() if f}


def test_frame_size_and_batch_size_are_respected() -> None:
    events = _run(minutes=1, seed=3, frame_ms=10, batch_ms=250, encoding="levels")
    acts = [e for e in events if e["type"] == "activity"]
    assert all(e["frame_ms"] == 10 and len(e["levels"]) == 25 for e in acts)


# --- delivery: jitter and duplicates -------------------------------------------------------


def test_jitter_delays_every_event_within_the_bound() -> None:
    config = SimulationConfig(sessions=3, minutes=3, seed=13, jitter_ms=700,
                              session_stagger_ms=5000)
    timed = list(simulate_timed(config))
    delivery = [t for t, _ in timed]
    assert delivery == sorted(delivery)
    delays = [t - _emission_ms(e) for t, e in timed]
    assert min(delays) >= 0 and max(delays) <= 700
    assert max(delays) > 600, "delays should spread over the whole bound"
    # Seen from the output alone: nothing arrives more than the bound after a later event.
    emissions = [_emission_ms(e) for _, e in timed]
    high = 0
    for em in emissions:
        assert em >= high - 700
        high = max(high, em)
    assert emissions != sorted(emissions), "jitter should reorder events"
    # Jitter only reorders: the same events, and the same conversation, as without it.
    plain = _run(sessions=3, minutes=3, seed=13, session_stagger_ms=5000)
    key = orjson.dumps
    assert sorted(key(e) for _, e in timed) == sorted(key(e) for e in plain)


def test_duplicates_come_at_roughly_the_rate() -> None:
    plain = _run(sessions=2, minutes=10, seed=17)
    duplicated = _run(sessions=2, minutes=10, seed=17, duplicate_rate=0.1, jitter_ms=50)
    counts = Counter(orjson.dumps(e) for e in duplicated)
    assert set(counts) == {orjson.dumps(e) for e in plain}
    assert max(counts.values()) == 2
    extra = len(duplicated) - len(plain)
    assert abs(extra / len(plain) - 0.1) < 0.02
    no_dup = _run(sessions=2, minutes=10, seed=17, jitter_ms=50)
    assert len(no_dup) == len(plain)


def test_duplicates_get_their_own_delay() -> None:
    items = [(t * 10, {"type": "network", "ts_ms": t * 10}) for t in range(2000)]
    rounds = deliver(iter([[item] for item in items]), random.Random(1), jitter_ms=300,
                     duplicate_rate=0.2)
    out = [item for batch in rounds for item in batch]
    assert [t for t, _ in out] == sorted(t for t, _ in out)
    copies: dict[int, list[int]] = defaultdict(list)
    for t, e in out:
        copies[e["ts_ms"]].append(t - e["ts_ms"])
    assert all(0 <= d <= 300 for ds in copies.values() for d in ds)
    pairs = [ds for ds in copies.values() if len(ds) == 2]
    assert 300 < len(pairs) < 500
    # Each copy draws its own delay: neither is pinned to the emission time.
    assert sum(1 for ds in pairs if min(ds) == 0) < 0.05 * len(pairs)
    assert statistics.mean(abs(a - b) for a, b in pairs) > 50


# --- VAD track: incremental finalisation ---------------------------------------------------


_Plan = tuple[list[list[tuple[int, int]]], list[int], list[tuple[int, int]]]


@st.composite
def _speech_plan(draw: st.DrawFn) -> _Plan:
    """Chunks of speech (frames) with horizons honouring the promise VadTrack relies on."""
    chunks: list[list[tuple[int, int]]] = []
    horizons: list[int] = []
    mutes: list[tuple[int, int]] = []
    floor = 0
    for _ in range(draw(st.integers(1, 8))):
        chunk = []
        for _ in range(draw(st.integers(0, 4))):
            a = draw(st.integers(floor, floor + 300))
            chunk.append((a, a + draw(st.integers(1, 200))))
        if draw(st.booleans()):
            m0 = draw(st.integers(floor, floor + 300))
            mutes.append((m0, m0 + draw(st.integers(1, 100))))
            chunk.append((-m0 - 1, -(m0 + mutes[-1][1] - m0) - 1))  # marker: a mute
        floor = draw(st.integers(floor, floor + 400))
        chunks.append(chunk)
        horizons.append(floor)
    return chunks, horizons, mutes


@settings(max_examples=150, deadline=None)
@given(plan=_speech_plan(), seed=st.integers(0, 3))
def test_vad_track_renders_exactly_the_speech_minus_mutes(
    plan: _Plan, seed: int
) -> None:
    chunks, horizons, _ = plan
    end = 3000
    clean = VadTrack(random.Random(seed), 0, end, 20, 0.0, 0.0)
    noisy = VadTrack(random.Random(seed), 0, end, 20, 300.0, 60.0)
    speech: set[int] = set()
    muted: set[int] = set()
    rendered = {id(clean): "", id(noisy): ""}
    for chunk, horizon in zip(chunks, horizons, strict=True):
        for a, b in chunk:
            if a < 0:
                for track in (clean, noisy):
                    track.add_mute(-a - 1, -b - 1)
                muted.update(range(-a - 1, -b - 1))
            else:
                for track in (clean, noisy):
                    track.add_speech(a, b)
                speech.update(range(a, min(b, end)))
        for track in (clean, noisy):
            before = track.ready
            track.advance(horizon)
            assert before <= track.ready <= end
            # Render what became final, in uneven slices, as batches would.
            start = len(rendered[id(track)])
            rendered[id(track)] += render_voiced(track.batch_runs(start, track.ready), start,
                                                 track.ready)
    for track in (clean, noisy):
        track.advance(end + 1)
        start = len(rendered[id(track)])
        rendered[id(track)] += render_voiced(track.batch_runs(start, end), start, end)
        assert len(rendered[id(track)]) == end
    expected = "".join("1" if i in speech and i not in muted else "0" for i in range(end))
    assert rendered[id(clean)] == expected
    got = rendered[id(noisy)]
    assert all(got[i] == "0" for i in muted)
    # Differences are only dropouts (<= 2 frames, inside speech) and blips (<= 3 frames,
    # >= 300 ms from any other voiced frame).
    for run in _diff_runs(expected, got):
        a, b, kind = run
        if kind == "dropout":
            assert b - a <= 2 and expected[a - 3 : b + 3] == "1" * (b - a + 6)
        else:
            assert b - a <= 3
            assert "1" not in got[max(0, a - 15) : a] + got[b : b + 15]


def _diff_runs(expected: str, got: str) -> list[tuple[int, int, str]]:
    runs = []
    i = 0
    while i < len(expected):
        if expected[i] == got[i]:
            i += 1
            continue
        j = i
        while j < len(expected) and expected[j] != got[j] and expected[j] == expected[i]:
            j += 1
        runs.append((i, j, "dropout" if expected[i] == "1" else "blip"))
        i = j
    return runs


# --- configuration and CLI -----------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"sessions": 0}, {"minutes": 0}, {"minutes": float("nan")}, {"frame_ms": 25},
     {"batch_ms": 1010}, {"jitter_ms": -1}, {"duplicate_rate": 1.5}, {"style": "chaotic"},
     {"encoding": "opus"}, {"network_interval_ms": 0}, {"session_stagger_ms": -5}],
)
def test_invalid_config_is_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SimulationConfig(**kwargs)


def _cli() -> argparse.ArgumentParser:
    from services.cli import simulate as cli

    parser = argparse.ArgumentParser(prog="rapport")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_writes_the_simulated_jsonl(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "events.jsonl"
    args = _cli().parse_args(["simulate", "--sessions", "2", "--minutes", "1.5", "--seed", "4",
                              "--style", "mixed", "-o", str(out)])
    assert args.handler(args) == 0
    lines = out.read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == list(
        _run(sessions=2, minutes=1.5, seed=4, style="mixed"))
    summary = capsys.readouterr().err
    assert summary.count("\n") == 1
    assert "2 sessions" in summary and f"{len(lines)} events" in summary


def test_cli_writes_to_stdout_without_summary(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    args = _cli().parse_args(["simulate", "--minutes", "0.2", "-o", "-"])
    assert args.handler(args) == 0
    captured = capsysbinary.readouterr()
    assert captured.err == b""
    assert [orjson.loads(line) for line in captured.out.splitlines()] == list(_run(minutes=0.2))


@pytest.mark.parametrize(
    "argv",
    [["--sessions", "0"], ["--minutes", "-1"], ["--minutes", "x"], ["--frame-ms", "25"],
     ["--jitter-ms", "-3"], ["--duplicate-rate", "2"], ["--style", "chaotic"],
     ["--session-id-prefix", ""]],
)
def test_cli_rejects_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _cli().parse_args(["simulate", *argv])
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_cli_rejects_batch_not_multiple_of_frame(capsys: pytest.CaptureFixture[str]) -> None:
    args = _cli().parse_args(["simulate", "--batch-ms", "1010"])
    assert args.handler(args) == 2
    assert "batch_ms" in capsys.readouterr().err


def test_cli_help_documents_every_option_with_its_default() -> None:
    from services.cli import simulate as cli

    subparsers = argparse.ArgumentParser(prog="rapport").add_subparsers()
    cli.register(subparsers)
    sub = subparsers.choices["simulate"]
    text = sub.format_help()
    for action in sub._actions:
        if action.dest in ("help",):
            continue
        assert action.help and "(default:" in action.help, action.dest
    assert "docs/simulator.md" in text
