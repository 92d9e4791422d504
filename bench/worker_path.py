"""Micro-benchmark of a streaming worker's per-record path, without Kafka or Faust's streams
(issue 15 point 5: where Rapport's own processing time goes).

It runs exactly the worker's code for each micro-batch (streams/app.py ``Pipeline.handle``:
order and delivery checks, input records, ``BatchProcessor.process`` with its JSON decoding,
validation, engine ingest, live copy, quality snapshots, output records and their JSON, dirty
marks, Prometheus counters) and its checkpoint rounds (``Pipeline.checkpoint_round``:
``checkpoint.dump`` of the dirty sessions due), on bench/pipeline.py's throughput workload
(100,000 simulated events of 142 sessions) in Rapport's framing (a session's events of one
moment per record, 2.7 events a record) or one event per record. What Faust and the broker
do is replaced by no-ops: the batch comes as ready-made events, sends and table writes go
nowhere, the producer's flush returns at once.

How the real run is modelled: records partitioned as Kafka's producer does (murmur2 of the
key, 8 partitions), timestamps spread as produced at the ceiling's rate (bench/pipeline.py
fills the topic in phase 1); micro-batches of ``--batch`` records (``take_events(2000)`` on a
backlog is full batches); a checkpoint round every ``--round-records`` records (the worker's
timer runs every 0.25 s: 1,200 records at ~4,800 records/s); a tick per partition every 4
rounds (1 s), stamped 30 s after the workload (the worker starts after phases 1-3).

Prints the time per record and per event of each stage (exclusive times from an instrumented
run: wrappers add ~0.1 µs a call) and the total of uninstrumented runs (best and median of
``--repeat``). ``--digest`` prints a SHA-256 of every output record and checkpoint written
(to check that a change keeps outputs byte-identical; ``--events 0`` runs the whole
simulation, ending and closing every session, so reports are included), ``--profile`` a
cProfile of one uninstrumented run.

Usage: ``.venv/bin/python bench/worker_path.py [--framing moment|event] [--events N]
[--repeat R] [--digest] [--profile]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import io
import platform
import pstats
import statistics
import sys
import time
import types
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka.partitioner import murmur2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import models.checkpoint  # noqa: E402
import models.processor  # noqa: E402
import models.session  # noqa: E402
from models.dirty_sessions import DirtySessions  # noqa: E402
from models.processor import BatchProcessor  # noqa: E402
from models.session import SessionEngine  # noqa: E402
from models.simulation import SimulationConfig, simulate_timed  # noqa: E402
from models.stream_session import StreamSession  # noqa: E402
from models.topics import Topics, session_key  # noqa: E402
from streams import app as worker  # noqa: E402
from streams import metrics  # noqa: E402

PARTITIONS = 8
TOPICS = Topics()
CEILING_RECORDS_S = 26_000  # phase 1's produce rate in Rapport's framing (timestamps' spread)


# --- the workload ------------------------------------------------------------------------

def workload(count: int, sessions: int) -> list[tuple[int, bytes, bytes]]:
    """bench/pipeline.py's workload: (delivery ms, key, value); ``count`` 0 means all."""
    out = []
    config = SimulationConfig(sessions=sessions, minutes=5, seed=11, style="mixed",
                              session_stagger_ms=60_000)
    clinics: dict[str, str] = {}
    for delivery_ms, event in simulate_timed(config):
        if event["type"] == "session.start":
            clinics[event["session_id"]] = event["clinic_id"]
        key = session_key(clinics[event["session_id"]], event["session_id"])
        out.append((delivery_ms, key, orjson.dumps(event)))
        if len(out) == count:
            break
    return out


def per_moment(work: list[tuple[int, bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """A session's events with the same delivery time in one JSONL record (as
    bench/pipeline.py frames them)."""
    out: list[tuple[bytes, bytes]] = []
    group: dict[bytes, list[bytes]] = {}
    moment = None
    for delivery_ms, key, value in work:
        if delivery_ms != moment:
            out += [(k, b"\n".join(v)) for k, v in group.items()]
            group, moment = {}, delivery_ms
        group.setdefault(key, []).append(value)
    out += [(k, b"\n".join(v)) for k, v in group.items()]
    return out


class Message:
    """What the worker reads of a Faust event's message."""

    __slots__ = ("headers", "key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, topic: str, partition: int, offset: int, timestamp: float,
                 key: bytes | None, value: bytes | None, headers: Any) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset
        self.timestamp, self.key, self.value, self.headers = timestamp, key, value, headers


class Event:
    __slots__ = ("__weakref__", "message")  # the worker keeps weak references to events

    def __init__(self, message: Message) -> None:
        self.message = message


def schedule(records: list[tuple[bytes, bytes]], batch: int, round_records: int,
             ticks_every: int) -> list[tuple[str, list[Event]]]:
    """The worker's calls, in order: ("batch", events) and ("round", [])."""
    offsets = [0] * PARTITIONS
    start_s = 1_700_000_000.0
    end_s = start_s + len(records) / CEILING_RECORDS_S
    tick_s = end_s + 30
    pending: list[Event] = []
    calls: list[tuple[str, list[Event]]] = []
    since_round = rounds = 0

    def add(partition: int, key: bytes | None, value: bytes, stamp: float,
            headers: Any) -> None:
        message = Message(TOPICS.events, partition, offsets[partition], stamp, key, value,
                          headers)
        offsets[partition] += 1
        pending.append(Event(message))

    for number, (key, value) in enumerate(records):
        partition = (murmur2(key) & 0x7FFFFFFF) % PARTITIONS
        add(partition, key, value, start_s + number / CEILING_RECORDS_S, [])
        if len(pending) >= batch:
            calls.append(("batch", pending))
            since_round += len(pending)
            pending = []
        if since_round >= round_records:
            since_round = 0
            calls.append(("round", []))
            rounds += 1
            if rounds % ticks_every == 0:
                for partition in range(PARTITIONS):
                    add(partition, None, b"", tick_s, [(worker.CONTROL_HEADER, worker.TICK)])
                tick_s += 1.0
    if pending:
        calls.append(("batch", pending))
    return calls


# --- a worker's Pipeline with Faust's side replaced by no-ops -----------------------------

class _Sent:
    def __init__(self, offset: int) -> None:
        self.offset = offset

    def __await__(self) -> Any:
        if False:
            yield
        return self


class _Output:
    def __init__(self, sink: list[tuple[str, bytes | None, bytes]] | None, role: str) -> None:
        self.sink, self.role, self.count = sink, role, 0

    async def send(self, key: bytes | None, value: bytes, partition: int,
                   headers: Any = None) -> _Sent:
        if self.sink is not None:
            self.sink.append((self.role, key, value))
        self.count += 1
        return _Sent(self.count)


class _Producer:
    class buffer:  # Faust's attribute name
        size = 0

    async def flush(self) -> None:
        return None


class _ReportLog:
    async def read(self, partition: int, start: int) -> tuple[dict[str, Any], int]:
        return {}, 0

    async def close(self) -> None:
        return None


class _Table(dict[bytes, bytes]):
    def __init__(self, sink: list[tuple[str, bytes | None, bytes]] | None) -> None:
        super().__init__()
        self.sink = sink

    def __setitem__(self, key: bytes, value: bytes) -> None:
        if self.sink is not None:
            self.sink.append(("table", key, value))
        super().__setitem__(key, value)


def pipeline(sink: list[tuple[str, bytes | None, bytes]] | None) -> worker.Pipeline:
    app = types.SimpleNamespace(producer=_Producer())
    config = worker.WorkerConfig(partitions=PARTITIONS)
    outputs = {role: _Output(sink, role) for role in TOPICS.outputs()}
    result = worker.Pipeline(app, config, _Table(sink), outputs)  # type: ignore[arg-type]
    result.report_log = _ReportLog()  # type: ignore[assignment]
    return result


def run(calls: list[tuple[str, list[Event]]],
        sink: list[tuple[str, bytes | None, bytes]] | None = None,
        final_tick: bool = False) -> tuple[float, worker.Pipeline]:
    """Seconds the worker's calls took (one event loop, as in the worker)."""
    loop = asyncio.new_event_loop()
    try:
        work = pipeline(sink)

        async def go() -> float:
            started = time.perf_counter()
            for kind, events in calls:
                if kind == "batch":
                    await work.handle(events)
                else:
                    await work.checkpoint_round()
            if final_tick:  # an hour later: every session ends, is reported, then written
                far = max(e.message.timestamp for _, b in calls for e in b) + 3_600
                offsets = Counter(e.message.partition for _, b in calls for e in b)
                await work.handle([Event(Message(
                    TOPICS.events, p, offsets[p], far, None, b"",
                    [(worker.CONTROL_HEADER, worker.TICK)])) for p in sorted(offsets)])
                while await work.checkpoint_round():
                    pass
            return time.perf_counter() - started

        return loop.run_until_complete(go()), work
    finally:
        loop.close()


# --- stage timing ----------------------------------------------------------------------------

class Stages:
    """Exclusive time per stage: a wrapped call's time minus its wrapped callees'."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._stack: list[float] = []
        self._undo: list[Callable[[], None]] = []

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        stack, seconds, calls, clock = self._stack, self.seconds, self.calls, time.perf_counter

        if asyncio.iscoroutinefunction(fn):
            # The fakes never suspend, so a coroutine's calls nest like plain calls.
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                started = clock()
                stack.append(0.0)
                try:
                    return await fn(*args, **kwargs)
                finally:
                    elapsed = clock() - started
                    seconds[name] += elapsed - stack.pop()
                    calls[name] += 1
                    if stack:
                        stack[-1] += elapsed
            return timed_async

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = clock()
            stack.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = clock() - started
                seconds[name] += elapsed - stack.pop()
                calls[name] += 1
                if stack:
                    stack[-1] += elapsed
        return timed

    def patch(self, owner: Any, attribute: str, name: str) -> None:
        original = owner.__dict__[attribute] if isinstance(owner, type) \
            else getattr(owner, attribute)
        if isinstance(original, property):
            assert original.fget is not None
            setattr(owner, attribute, property(self.wrap(name, original.fget)))
        elif isinstance(original, staticmethod):
            setattr(owner, attribute, staticmethod(self.wrap(name, original.__func__)))
        else:
            setattr(owner, attribute, self.wrap(name, original))
        self._undo.append(lambda: setattr(owner, attribute, original))

    def shim(self, module: Any, attribute: str, functions: dict[str, str]) -> None:
        """Replace ``module.attribute`` (a module it imported) by a namespace whose named
        functions are timed."""
        original = getattr(module, attribute)
        namespace = types.SimpleNamespace(**{
            name: getattr(original, name) for name in dir(original) if not name.startswith("__")})
        for function, stage in functions.items():
            setattr(namespace, function, self.wrap(stage, getattr(original, function)))
        setattr(module, attribute, namespace)
        self._undo.append(lambda: setattr(module, attribute, original))

    def undo(self) -> None:
        for restore in reversed(self._undo):
            restore()
        self._undo.clear()


def instrument(stages: Stages) -> None:
    """The stages of the worker's path (what each covers, callees excluded)."""
    p = stages.patch
    p(worker.Pipeline, "_handle", "worker glue (order checks, input records, sends)")
    p(BatchProcessor, "process", "processor: routing, session keys, closing checks")
    p(BatchProcessor, "_ingest_event", "processor: routing, session keys, closing checks")
    p(models.processor, "decode_json", "JSON decode of input lines")
    p(models.processor, "parse_event", "event parse/validate (models/events.py)")
    p(SessionEngine, "ingest", "engine ingest (final + live copy)")
    p(SessionEngine, "advance", "engine advance (final stages)")
    p(SessionEngine, "live_decided_ms", "live copy: advance to N - L")
    stages.shim(models.session, "pickle", {"dumps": "live copy: rebuild (pickle)",
                                           "loads": "live copy: rebuild (pickle)"})
    p(SessionEngine, "snapshot", "quality snapshot (report dict)")
    p(SessionEngine, "finish", "session finish (final report)")
    p(BatchProcessor, "_collect", "outputs: classified events, alerts")
    p(models.processor, "quality_record", "outputs: record dicts")
    p(models.processor, "alert_record", "outputs: record dicts")
    p(models.processor, "report_record", "outputs: record dicts")
    p(models.processor, "rejected_record", "outputs: record dicts")
    stages.shim(models.processor, "orjson", {"dumps": "outputs: JSON encode"})
    p(BatchProcessor, "_close_due", "processor: routing, session keys, closing checks")
    p(DirtySessions, "mark", "dirty marks")
    p(metrics, "observe", "Prometheus counters")
    p(worker.Pipeline, "checkpoint_round", "checkpoint round (glue)")
    p(StreamSession, "to_state", "checkpoint: state tree")
    stages.shim(models.checkpoint, "msgpack", {"packb": "checkpoint: MessagePack"})
    stages.shim(models.checkpoint, "zlib", {"compress": "checkpoint: zlib",
                                            "crc32": "checkpoint: CRC"})


def digest(sink: list[tuple[str, bytes | None, bytes]]) -> dict[str, str]:
    hashes: dict[str, Any] = defaultdict(hashlib.sha256)
    counts: Counter[str] = Counter()
    for role, key, value in sink:
        hashes[role].update(b"%d:%s:%d:%s;" % (len(key or b""), key or b"", len(value), value))
        counts[role] += 1
    return {role: f"{counts[role]:>6} records, sha256 {hashes[role].hexdigest()[:16]}"
            for role in sorted(hashes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framing", choices=("moment", "event"), default="moment",
                        help="a session's events of one moment per record (as the ingest "
                        "publishes them; default) or one event per record")
    parser.add_argument("--events", type=int, default=100_000,
                        help="events fed (default 100,000, as bench/pipeline.py; 0: the whole "
                        "simulation)")
    parser.add_argument("--sessions", type=int, default=142, help="simulated sessions (142)")
    parser.add_argument("--batch", type=int, default=2_000,
                        help="records per Pipeline.handle call, as Faust hands them (2,000)")
    parser.add_argument("--round-records", type=int, default=1_200,
                        help="records between checkpoint rounds (1,200)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="untimed runs whose best total is printed (5)")
    parser.add_argument("--digest", action="store_true",
                        help="print a SHA-256 of every output and checkpoint (no timing)")
    parser.add_argument("--profile", action="store_true", help="cProfile one run")
    args = parser.parse_args()

    work = workload(args.events, args.sessions)
    records = per_moment(work) if args.framing == "moment" else [(k, v) for _, k, v in work]
    events = len(work)
    ticks_every = 4
    calls = schedule(records, args.batch, args.round_records, ticks_every)
    print(f"worker path, {platform.python_version()}, {platform.processor() or platform.machine()}"
          f", {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC; {events:,} events in "
          f"{len(records):,} records ({args.framing} framing, {events / len(records):.2f} "
          f"events a record), batches of {args.batch}, "
          f"{sum(kind == 'round' for kind, _ in calls)} checkpoint rounds")

    if args.digest:
        sink: list[tuple[str, bytes | None, bytes]] = []
        run(calls, sink, final_tick=True)
        for role, line in digest(sink).items():
            print(f"  {role:8} {line}")
        return

    stages = Stages()
    instrument(stages)
    try:
        instrumented, work_done = run(calls)
    finally:
        stages.undo()
    updates = sum(n for name, n in stages.calls.items() if name.startswith("quality snapshot"))
    dumps = stages.calls["checkpoint: MessagePack"]
    print(f"  {updates:,} quality snapshots, {dumps:,} checkpoints, "
          f"{stages.calls['live copy: rebuild (pickle)'] // 2:,} live-copy rebuilds")
    print(f"  {'stage (instrumented run, exclusive time)':58} {'µs/record':>9} {'µs/event':>9} "
          f"{'share':>6} {'calls':>8}")
    total = sum(stages.seconds.values())
    for name, seconds in sorted(stages.seconds.items(), key=lambda item: -item[1]):
        print(f"  {name:58} {seconds * 1e6 / len(records):9.2f} {seconds * 1e6 / events:9.2f} "
              f"{seconds / total:6.1%} {stages.calls[name]:8,}")
    print(f"  {'sum of stages':58} {total * 1e6 / len(records):9.2f} "
          f"{total * 1e6 / events:9.2f}  (run: {instrumented:.3f} s)")

    times = []
    for _ in range(args.repeat):
        seconds, _work = run(calls)
        times.append(seconds)
    best, median = min(times), statistics.median(times)
    print(f"  total, uninstrumented ({args.repeat} runs): best {best * 1e6 / len(records):.2f} "
          f"µs/record, {best * 1e6 / events:.2f} µs/event ({events / best:,.0f} events/s); "
          f"median {median * 1e6 / events:.2f} µs/event")
    del work_done

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run(calls)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(40)
        print(out.getvalue())


if __name__ == "__main__":
    main()
