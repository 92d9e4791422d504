"""Write the golden checkpoint files of the current format version (models/checkpoint.py).

    PYTHONPATH=. .venv/bin/python scripts/make_checkpoint_goldens.py

writes ``tests/data/checkpoints/v<FORMAT_VERSION>/<name>.bin`` and, next to each,
``<name>.json`` (the report the session ends with, or a closed marker's fields) and
``<name>.rest.jsonl`` (the events still to come after the checkpoint, one per line).
``tests/unit/test_checkpoint_goldens.py`` loads every version's files. Run it once per format
version, when the version is bumped: the files of earlier versions are never rewritten (they
are what a deployed worker may still hold).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from models import checkpoint
from models.config import EngineConfig
from models.events import parse_event
from models.session import SessionEngine
from models.simulation import SimulationConfig, simulate
from models.stream_session import ClosedSession, StreamSession

ROOT = Path(__file__).resolve().parent.parent
SHAPE_OF = {"activity": "frames", "speech": "segments", "voice": "voice", "levels": "levels"}


def shapes(events: list[dict[str, Any]]) -> set[str]:
    return {SHAPE_OF[e["type"]] for e in events if e["type"] in SHAPE_OF}


def simulated(minutes: float, style: str, shape: str, seed: int) -> list[dict[str, Any]]:
    return list(simulate(SimulationConfig(sessions=1, minutes=minutes, seed=seed, style=style,
                                          shape=shape, jitter_ms=2000, duplicate_rate=0.05)))


def every_shape() -> list[dict[str, Any]]:
    """A group session whose participants send frames, segments, voice and levels: the
    first seed that gives all four."""
    for seed in range(100):
        events = simulated(2, "group", "mixed", seed)
        if shapes(events) == set(SHAPE_OF.values()):
            return events
    raise SystemExit("no seed below 100 gives every shape")


def exclusive(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**e, "exclusive": True} if e["type"] == "session.start" else e for e in events]


def engine_at(events: list[dict[str, Any]], cut: int) -> SessionEngine:
    engine = SessionEngine(events[0]["session_id"], EngineConfig(), advance_step_ms=1000)
    for raw in events[:cut]:
        engine.ingest(parse_event(raw))
        engine.drain()
    return engine


def finished(engine: SessionEngine, rest: list[dict[str, Any]]) -> dict[str, Any]:
    for raw in rest:
        engine.ingest(parse_event(raw))
    return engine.finish()


def write(directory: Path, name: str, state: Any, meta: dict[str, Any],
          rest: list[dict[str, Any]] | None = None) -> None:
    (directory / f"{name}.bin").write_bytes(checkpoint.dump(state))
    if rest is not None:
        (directory / f"{name}.rest.jsonl").write_bytes(
            b"".join(orjson.dumps(event) + b"\n" for event in rest))
    (directory / f"{name}.json").write_bytes(
        orjson.dumps(meta, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    print(f"{name}: {len((directory / f'{name}.bin').read_bytes())} bytes")


def session_golden(directory: Path, name: str, events: list[dict[str, Any]], cut: int,
                   wrap: bool = False) -> None:
    engine = engine_at(events, cut)
    rest = events[cut:]
    # What the session ends with, uninterrupted; the golden must give exactly that.
    report = finished(engine_at(events, len(events)), [])
    state: Any = StreamSession(engine, 2, 40 + cut, 0, 1_000_000 + cut, None, None, 3) \
        if wrap else engine
    write(directory, name, state, {"kind": state.CHECKPOINT_KIND, "report": report}, rest)
    restored = checkpoint.load(checkpoint.dump(state), type(state))
    again = restored.engine if isinstance(restored, StreamSession) else restored
    if finished(again, rest) != report:
        raise SystemExit(f"{name}: the restored engine does not give the uninterrupted report")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "checkpoints")
    args = parser.parse_args(argv)
    directory = args.out / f"v{checkpoint.FORMAT_VERSION}"
    directory.mkdir(parents=True, exist_ok=True)
    mixed = every_shape()
    session_golden(directory, "fresh", mixed, 1)  # session.start only
    session_golden(directory, "mid-every-shape", mixed, len(mixed) // 2)
    voice = exclusive(simulated(2, "interruptive", "voice", 5))
    session_golden(directory, "mid-exclusive", voice, len(voice) * 2 // 3)
    session_golden(directory, "open-stream-session", mixed, len(mixed) * 3 // 4, wrap=True)
    closed = ClosedSession("golden-closed", 1, 1234, 2, 5_000_000, "unreportable")
    write(directory, "closed-session", closed, {
        "kind": closed.CHECKPOINT_KIND, "session_id": closed.session_id,
        "partition": closed.partition, "last_offset": closed.last_offset,
        "last_index": closed.last_index, "closed_record_ms": closed.closed_record_ms,
        "ended_by": closed.ended_by})
    return 0


if __name__ == "__main__":
    sys.exit(main())
