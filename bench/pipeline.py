"""Benchmark of the streaming pipeline (issue "Streaming workers"; issue 15 point 5), in one
run on each broker asked for: the embedded broker (librdkafka's mock cluster) and a real
1-broker Apache Kafka (KRaft) started by the project's launcher (bench/brokers.py says what
differs between them).

On each broker, for N simulated wire events in two framings — one event per Kafka record,
and a session's events of one moment (same delivery time: both participants' 1 s batches,
network samples) per record, as Rapport's ingest and ``rapport run`` publish them — on a fresh
broker each:

1. Ceiling: raw aiokafka, the records produced and consumed concurrently, msgs/s and events/s.
2. Faust's own floor: an agent that does nothing but ``take_events`` (no decoding, no state).
3. Naive Faust agent (bench/naive_agent.py): the usual pattern, JSON-decode each event and
   update a table once per event: events/s.
4. Rapport's worker (``rapport worker``: take_events micro-batches, one checkpoint per dirty
   session per commit, raw codecs) on the same records: events/s, and the ratio to 3 (target
   >= 3x).

5. Real time: S concurrent sessions (2 participants, 1 s frame batches, network samples every
   5 s) published at wall-clock pace for T seconds into one worker process, a session's events
   of one moment per record; latency from each input record's timestamp to the moment the
   quality update it triggered is consumed from rapport.quality (the engine's deliberate
   look-ahead is thereby excluded: the update is measured from the input that made it
   decidable), p50/p99 after a warm-up (target p99 < 500 ms), plus the worker's CPU use, how
   long its main thread waited for a CPU (a shared machine's other work), and
   whether it kept up.

Rates 2-4 come from polling each worker's ``rapport_events_consumed_total`` every 100 ms (first
> 0 to = N). Workers are separate processes; the producer and latency consumer share this
process, and so does the embedded broker (real Kafka is a JVM process of its own). Each
broker prints the targets (they are the issue's for real Kafka) and whether they hold: Rapport's
worker >= 3x the naive agent with one event per record; with Rapport's framing >= 25 % of the
raw ceiling in events/s; 2,000 live sessions at p99 < 500 ms. The machine may be shared: the
date, CPU and load average are printed at the start and the end.

Usage: ``.venv/bin/python bench/pipeline.py [--broker embedded|kafka|both] [--events N]
[--sessions S] [--seconds T] [--realtime-only | --throughput-only] [--timeline]
[--worker-arg ARG]``. Real Kafka needs Java 17+ and the jars of ``make kafka``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.brokers import PROFILES, BrokerProfile, running_broker  # noqa: E402
from models.simulation import SimulationConfig, simulate_timed  # noqa: E402
from models.topics import Topics, TopicSpec, session_key  # noqa: E402
from services.kafka_cluster import (  # noqa: E402
    KafkaClusterError,
    die_with_parent,
    find_java,
    read_classpath,
)

PARTITIONS = 8
# How often phases 2-4 read a worker's consumed count from its /metrics page: rendering the page
# costs the worker CPU (every 20 ms took 5 % of Rapport's), and a run lasts 10-40 s.
POLL_S = 0.1
TOPICS = Topics()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def consumed(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("rapport_events_consumed_total "):
                    return float(line.split()[1])
    except OSError:
        pass
    return -1.0


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def runnable_seconds(pid: int) -> float:
    """How long the process's main thread has waited, runnable, for a CPU (the kernel's
    schedstat; 0 where unavailable): on a shared machine, the time others' work took from it."""
    try:
        return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


Record = tuple[bytes, bytes]  # key, value


def _key(event: dict[str, Any], clinics: dict[str, str]) -> bytes:
    """The session key of a simulated event (a session's start comes first)."""
    if event["type"] == "session.start":
        clinics[event["session_id"]] = event["clinic_id"]
    return session_key(clinics[event["session_id"]], event["session_id"])


def workload(count: int, sessions: int) -> list[tuple[int, bytes, bytes]]:
    """``count`` simulated wire events as (delivery ms, key, value), sessions interleaved."""
    out = []
    config = SimulationConfig(sessions=sessions, minutes=5, seed=11, style="mixed",
                              session_stagger_ms=60_000)
    clinics: dict[str, str] = {}
    for delivery_ms, event in simulate_timed(config):
        out.append((delivery_ms, _key(event, clinics), orjson.dumps(event)))
        if len(out) == count:
            break
    return out


def per_event_records(work: list[tuple[int, bytes, bytes]]) -> list[Record]:
    return [(key, value) for _, key, value in work]


def per_moment(work: list[tuple[int, bytes, bytes]]) -> list[Record]:
    """A session's events with the same delivery time in one JSONL record."""
    out: list[Record] = []
    group: dict[bytes, list[bytes]] = {}
    moment = None
    for delivery_ms, key, value in work:
        if delivery_ms != moment:
            out += [(k, b"\n".join(v)) for k, v in group.items()]
            group, moment = {}, delivery_ms
        group.setdefault(key, []).append(value)
    out += [(k, b"\n".join(v)) for k, v in group.items()]
    return out


@contextlib.asynccontextmanager
async def running(*clients: Any) -> AsyncIterator[None]:
    """The aiokafka clients started, and stopped however the block ends (Ctrl-C too)."""
    try:
        for client in clients:
            await client.start()
        yield
    finally:
        for client in reversed(clients):
            await client.stop()


def fetch_wait(milliseconds: int | None) -> dict[str, int]:
    """An aiokafka consumer's fetch wait, or its default (None)."""
    return {} if milliseconds is None else {"fetch_max_wait_ms": milliseconds}


async def ceiling(bootstrap: str, events: list[Record], profile: BrokerProfile) -> float:
    consumer = AIOKafkaConsumer(TOPICS.events, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest",
                                **fetch_wait(profile.ceiling_fetch_max_wait_ms))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    async with running(consumer, producer):
        got = 0

        async def consume() -> None:
            nonlocal got
            while got < len(events):
                batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
                got += sum(len(m) for m in batches.values())

        started = time.perf_counter()
        reader = asyncio.create_task(consume())
        try:
            for key, value in events:
                await producer.send(TOPICS.events, value, key=key)
            await producer.flush()
            await reader
        finally:
            reader.cancel()  # already done unless interrupted
        elapsed = time.perf_counter() - started
    return len(events) / elapsed


def measure_worker(command: list[str], port: int, total: int, label: str) -> float:
    process = start_process(command)
    try:
        first = last = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            count = consumed(port)
            now = time.perf_counter()
            if count > 0 and first is None:
                first = now
            if count >= total:
                last = now
                break
            if process.poll() is not None:
                raise SystemExit(f"{label} worker exited with {process.returncode}")
            time.sleep(POLL_S)
        if first is None or last is None:
            raise SystemExit(f"{label}: did not finish within 300 s")
        return total / (last - first)
    finally:
        stop_process(process, 20)


def start_process(command: list[str]) -> subprocess.Popen[bytes]:
    """A worker process; it gets SIGTERM should the bench die without stopping it."""
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)


def stop_process(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        print(f"warning: a worker did not stop within {timeout_s:.0f} s of SIGTERM; killed")
        process.kill()
        process.wait()


def rapport_worker(bootstrap: str, port: int, profile: BrokerProfile, *extra: str) -> list[str]:
    return [sys.executable, "-m", "services.cli", "worker", "--broker", f"kafka://{bootstrap}",
            "--partitions", str(PARTITIONS), "--declare-topics", "no", *profile.worker_args,
            "--web-port", str(port), *extra]


def realtime_load(sessions: int, seconds: float) -> list[tuple[float, list[Record], int]]:
    """The real-time workload, built before the clock starts so the producer only sends:
    (seconds from start, records of that moment, events in them)."""
    config = SimulationConfig(sessions=sessions, minutes=(seconds + 30) / 60, seed=5,
                              style="mixed", session_stagger_ms=5_000)
    moments: list[tuple[float, list[Record], int]] = []
    group: dict[bytes, list[bytes]] = {}
    clinics: dict[str, str] = {}
    moment: int | None = None
    first: int | None = None

    def close() -> None:
        if moment is not None and group:
            records = [(key, b"\n".join(lines)) for key, lines in group.items()]
            moments.append(((moment - (first or 0)) / 1000, records,
                            sum(len(lines) for lines in group.values())))
        group.clear()

    for delivery_ms, event in simulate_timed(config):
        if delivery_ms != moment:
            close()
            moment = delivery_ms
            first = delivery_ms if first is None else first
            if (delivery_ms - first) / 1000 > seconds:
                break
        group.setdefault(_key(event, clinics), []).append(orjson.dumps(event))
    return moments


async def realtime(bootstrap: str, load: list[tuple[float, list[Record], int]],
                   warmup: float, port: int, pid: int, timeline: bool,
                   profile: BrokerProfile) -> dict[str, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1,
                                linger_ms=profile.realtime_linger_ms)
    consumer = AIOKafkaConsumer(TOPICS.quality, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="latest",
                                max_partition_fetch_bytes=8 * 1024 * 1024,
                                **fetch_wait(profile.latency_fetch_max_wait_ms))
    async with running(producer, consumer):
        latencies: list[float] = []
        trace: list[tuple[float, float]] = []
        stop = asyncio.Event()
        started = time.time()
        measure_from = started + warmup

        async def read_quality() -> None:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=50, max_records=20_000)
                now = time.time() * 1000
                if now < measure_from * 1000:
                    continue
                for messages in batches.values():
                    for message in messages:
                        # The source stamp sits in the record's tail; parse it whole anyway.
                        source = orjson.loads(message.value)["source"]
                        latencies.append(now - source["timestamp_ms"])
                        trace.append((now, latencies[-1]))

        reader = asyncio.create_task(read_quality())
        try:
            produced = produced_at_warmup = 0
            behind = 0.0
            cpu_at_warmup: float | None = None
            waited_at_warmup = 0.0
            for at, records, events in load:
                delay = started + at - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    behind = max(behind, -delay)
                if cpu_at_warmup is None and time.time() >= measure_from:
                    cpu_at_warmup, produced_at_warmup = cpu_seconds(pid), produced
                    waited_at_warmup = runnable_seconds(pid)
                for key, value in records:
                    await producer.send(TOPICS.events, value, key=key)
                produced += events
            await producer.flush()
            elapsed = time.time() - measure_from
            cpu = cpu_seconds(pid) - (cpu_at_warmup or 0.0)
            waited = runnable_seconds(pid) - waited_at_warmup
            await asyncio.sleep(2)
            stop.set()
            await reader
        finally:
            reader.cancel()  # already done unless interrupted
        consumed_total = metric(port, "rapport_events_consumed_total")
    values = np.array(latencies)
    if timeline:
        print_timeline(trace)
    return {
        "events_per_s": (produced - produced_at_warmup) / elapsed,
        "updates": float(len(values)),
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
        "max_ms": float(values.max()),
        "cpu_share": cpu / elapsed,
        "cpu_wait_share": waited / elapsed,
        "lag": float(produced - consumed_total),
        "producer_behind_ms": behind * 1000,
    }


def print_timeline(trace: list[tuple[float, float]]) -> None:
    """Update latency per second of phase 5 after the warm-up, as ``second:p50/max`` in ms:
    periodic stalls (commits, GC) show up here, not in the percentiles."""
    seconds: dict[int, list[float]] = {}
    start = trace[0][0]
    for now, latency in trace:
        seconds.setdefault(int((now - start) / 1000), []).append(latency)
    print("   latency by second (p50/max ms): " + " ".join(
        f"{second}:{np.percentile(values, 50):.0f}/{max(values):.0f}"
        for second, values in sorted(seconds.items())))


def throughput(records: list[Record], events: int, label: str, worker_args: list[str],
               profile: BrokerProfile) -> dict[str, float]:
    """Phases 1-4 on a fresh broker for one framing: events/s of the ceiling (1), the naive
    agent (3) and Rapport's worker (4)."""
    print(f" {label}: {events:,} events in {len(records):,} records")
    changelogs = [TopicSpec("bench-naive-counts-changelog", PARTITIONS),
                  TopicSpec("bench-floor-counts-changelog", PARTITIONS)]
    with running_broker(profile, PARTITIONS, changelogs) as bootstrap:
        rate = asyncio.run(ceiling(bootstrap, records, profile))
        print(f"  1. raw aiokafka produce+consume: {rate:,.0f} records/s = "
              f"{rate * events / len(records):,.0f} events/s")
        agent = [sys.executable, str(ROOT / "bench" / "naive_agent.py"), bootstrap,
                 str(PARTITIONS), "--fetch-max-wait-ms", str(profile.agent_fetch_max_wait_ms)]
        port = free_port()
        floor = measure_worker([*agent, "--web-port", str(port), "--floor"], port,
                               len(records), "floor")
        print(f"  2. Faust floor (take_events, no work): {floor:,.0f} records/s = "
              f"{floor * events / len(records):,.0f} events/s")
        port = free_port()
        naive = measure_worker([*agent, "--web-port", str(port)], port, events, "naive")
        print(f"  3. naive Faust agent (table update per event): {naive:,.0f} events/s")
        port = free_port()
        ours = measure_worker(rapport_worker(bootstrap, port, profile, *worker_args), port,
                              events, "rapport")
        print(f"  4. Rapport worker: {ours:,.0f} events/s = {ours / naive:.1f}x the naive "
              f"agent, {ours / (rate * events / len(records)):.0%} of the raw ceiling")
    return {"ceiling": rate * events / len(records), "naive": naive, "ours": ours}


def realtime_phase(load: list[tuple[float, list[Record], int]], args: argparse.Namespace,
                   profile: BrokerProfile) -> dict[str, float]:
    """Phase 5 on a fresh broker: one worker process under ``args.sessions`` live sessions."""
    with running_broker(profile, PARTITIONS) as bootstrap:
        port = free_port()
        process = start_process(rapport_worker(bootstrap, port, profile, *args.worker_arg))
        try:
            deadline = time.monotonic() + 60
            while metric_or_zero(port, "rapport_partitions_assigned") < PARTITIONS:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("worker did not get its partitions")
                time.sleep(0.2)
            result = asyncio.run(realtime(bootstrap, load, args.warmup, port, process.pid,
                                          args.timeline, profile))
        finally:
            stop_process(process, 30)
    print(f" 5. real time, {args.sessions:,} concurrent sessions for {args.seconds:.0f} s "
          f"(first {args.warmup:.0f} s excluded): {result['events_per_s']:,.0f} events/s in, "
          f"{result['updates']:,.0f} quality updates; update latency p50 "
          f"{result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms, max "
          f"{result['max_ms']:.0f} ms; worker CPU {result['cpu_share']:.0%} of one core, its "
          f"main thread waiting for a CPU {result['cpu_wait_share']:.0%} of the time; "
          f"lag at end {result['lag']:,.0f} events; producer at most "
          f"{result['producer_behind_ms']:.0f} ms behind schedule")
    return result


def verdict(held: bool) -> str:
    return "MET" if held else "NOT MET"


def print_targets(profile: BrokerProfile, per_event: dict[str, float] | None,
                  framed: dict[str, float] | None, live: dict[str, float] | None,
                  sessions: int) -> None:
    """The issue's targets (set for real Kafka) against this broker's figures."""
    print(f" targets on the {profile.kind} broker"
          f"{'' if profile.kind == 'kafka' else ' (the issue sets them for real Kafka)'}:")
    if per_event is not None:
        ratio = per_event["ours"] / per_event["naive"]
        print(f"  - Rapport's worker >= 3x the naive agent, one event per record: "
              f"{ratio:.2f}x: {verdict(ratio >= 3)}")
    if framed is not None:
        share = framed["ours"] / framed["ceiling"]
        print(f"  - Rapport's framing >= 25 % of the raw ceiling in events/s: "
              f"{framed['ours']:,.0f} / {framed['ceiling']:,.0f} = {share:.0%}: "
              f"{verdict(share >= 0.25)}")
    if live is not None:
        held = verdict(live["p99_ms"] < 500 and live["lag"] <= 0)
        if sessions != 2_000:
            held = f"not checked: run at {sessions:,} sessions (p99 < 500 ms there: {held})"
        print(f"  - 2,000 live sessions on one worker process, p99 < 500 ms, keeping up: p99 "
              f"{live['p99_ms']:.0f} ms, lag at end {live['lag']:,.0f} events: {held}")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min)"


def stamp(when: str) -> None:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    print(f"{when}: {now}; {load_average()}", flush=True)


def on_sigterm(_signum: int, _frame: Any) -> None:
    """SIGTERM unwinds like Ctrl-C, so the brokers and workers are stopped on the way out."""
    raise SystemExit("bench/pipeline.py: terminated")


def run_on(profile: BrokerProfile, args: argparse.Namespace,
           work: list[tuple[int, bytes, bytes]],
           load: list[tuple[float, list[Record], int]]) -> None:
    print(f"\n== {profile.label} ==")
    stamp("start")
    per_event = framed = live = None
    if not args.realtime_only:
        per_event = throughput(per_event_records(work), len(work), "one event per record",
                               args.worker_arg, profile)
        framed = throughput(per_moment(work), len(work),
                            "a session's events of one moment per record", args.worker_arg,
                            profile)
    if not args.throughput_only:
        live = realtime_phase(load, args, profile)
    print_targets(profile, per_event, framed, live, args.sessions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", choices=("embedded", "kafka", "both"), default="both",
                        help="where to measure (default: %(default)s, the embedded broker "
                        "first)")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=2_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--realtime-only", action="store_true",
                        help="skip the throughput comparison (1-4), run only 5")
    parser.add_argument("--throughput-only", action="store_true",
                        help="run only the throughput comparison (1-4), skip 5")
    parser.add_argument("--timeline", action="store_true",
                        help="also print phase 5's update latency second by second (p50/max)")
    parser.add_argument("--worker-arg", action="append", default=[], metavar="ARG",
                        help="extra `rapport worker` argument for Rapport's worker, repeatable "
                        "(e.g. --worker-arg=--commit-interval-s=10)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, on_sigterm)
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; the machine may be shared with other jobs: see the "
          f"load averages")
    stamp("start")
    profiles = [PROFILES[kind] for kind in PROFILES if args.broker in (kind, "both")]
    if any(profile.kind == "kafka" for profile in profiles):
        try:  # before minutes on the embedded broker, not after
            find_java()
            read_classpath()
        except KafkaClusterError as error:
            raise SystemExit(f"bench/pipeline.py: no real Kafka here: {error}; or measure "
                             "with --broker embedded") from None
    # Built once, before any clock starts: every broker gets the same records.
    work = [] if args.realtime_only else workload(args.events, max(args.events // 700, 1))
    load = [] if args.throughput_only else realtime_load(args.sessions, args.seconds)
    try:
        for profile in profiles:
            run_on(profile, args, work, load)
    except KeyboardInterrupt:
        raise SystemExit("bench/pipeline.py: interrupted; brokers and workers stopped") from None
    finally:
        print()
        stamp("end")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def metric_or_zero(port: int, name: str) -> float:
    try:
        return metric(port, name)
    except OSError:
        return 0.0


if __name__ == "__main__":
    main()
