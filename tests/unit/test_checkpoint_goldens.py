"""Golden checkpoint files (tests/data/checkpoints/v<N>/, scripts/make_checkpoint_goldens.py):
every version a worker still reads loads and finishes with the report stored next to it; a
version no longer read is refused with CheckpointError (models/checkpoint.py, "The rule")."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from models import checkpoint
from models.events import parse_event
from models.processor import BatchProcessor
from models.records import InputRecord
from models.session import SessionEngine
from models.stream_session import ClosedSession, StreamSession, UnreadableState, load_state

GOLDENS = Path(__file__).resolve().parent.parent / "data" / "checkpoints"
# Versions this code still reads; every other directory's files must be refused.
READ = set(checkpoint.READS)
FILES = sorted(GOLDENS.glob("v*/*.bin"))


def version_of(path: Path) -> int:
    return int(path.parent.name[1:])


def test_the_current_format_version_has_goldens() -> None:
    current = GOLDENS / f"v{checkpoint.FORMAT_VERSION}"
    names = {path.stem for path in current.glob("*.bin")}
    assert {"fresh", "mid-every-shape", "mid-exclusive", "open-stream-session",
            "closed-session"} <= names, "run scripts/make_checkpoint_goldens.py"


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_golden_checkpoint_loads_and_finishes_with_its_report(path: Path) -> None:
    data = path.read_bytes()
    if version_of(path) not in READ:
        with pytest.raises(checkpoint.CheckpointError, match="cannot be read"):
            load_state(data)
        return
    meta = orjson.loads(path.with_suffix(".json").read_bytes())
    state = checkpoint.load(data, (SessionEngine, StreamSession, ClosedSession))
    assert meta["kind"] == state.CHECKPOINT_KIND
    if isinstance(state, ClosedSession):
        fields = {k: v for k, v in meta.items() if k != "kind"}
        assert state == ClosedSession(**fields)
        return
    engine = state.engine if isinstance(state, StreamSession) else state
    rest = path.with_suffix(".rest.jsonl").read_bytes().splitlines()
    for line in rest:
        engine.ingest(parse_event(orjson.loads(line)))
    report = orjson.loads(orjson.dumps(engine.finish()))
    assert report == meta["report"]


@pytest.mark.parametrize("path", [p for p in FILES if version_of(p) in READ],
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_corrupted_golden_is_dead_lettered_by_the_worker(path: Path) -> None:
    """Issue 15 point 4 acceptance: one byte of the golden changed, the worker taking the
    partition over dead-letters the entry and closes the session as unreportable."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x5A
    with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
        load_state(bytes(data))
    entry = UnreadableState("c1 golden", 0, bytes(data), "corrupt checkpoint (CRC mismatch)")
    processor = BatchProcessor()
    tick = InputRecord(b"", 0, 0, 1_000, control=True)
    result = processor.process([tick], lambda partition: [("c1 golden", entry)]
                               if partition == 0 else [])
    (dead,) = [orjson.loads(o.value) for o in result.outputs if o.topic == "dlq"]
    assert (dead["reason"], dead["clinic_id"], dead["session_id"], dead["raw_size"]) == (
        "unreportable", "c1", "golden", len(data))
    assert result.unreadable == 1 and result.closed["unreportable"] == 1
    assert isinstance(processor.session(0, "c1 golden"), ClosedSession)

