"""Benchmark of the streaming pipeline (issue "Streaming workers"), all on the embedded broker,
in one run:

1. Ceiling: raw aiokafka, N simulated wire events produced and consumed concurrently, msgs/s.
2. Naive Faust agent (bench/naive_agent.py): the usual pattern, one table update per event,
   consuming the same N events: events/s.
3. Rapport's worker (``rapport worker``: micro-batches with take_events, one checkpoint per
   touched session per batch, raw codecs) on the same N events: events/s, and the ratio to 2
   (target >= 3x).
4. Real time: S concurrent sessions (2 participants, 1 s frame batches, network samples every
   5 s) published at wall-clock pace for T seconds into one worker process; latency from each
   input record's timestamp to the moment the quality update it triggered is consumed from
   rapport.quality (the engine's deliberate look-ahead is thereby excluded: the update is
   measured from the input that made it decidable), p50/p99 after a warm-up (target p99 <
   500 ms), plus the worker's CPU use and whether it kept up.

Rates 2 and 3 come from polling each worker's ``rapport_events_consumed_total`` every 20 ms
(first > 0 to = N). Both workers are separate processes; the broker, producer and latency
consumer share this process.

Usage: ``.venv/bin/python bench/pipeline.py [--events N] [--sessions S] [--seconds T]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.simulation import SimulationConfig, simulate, simulate_timed  # noqa: E402
from services.broker import EmbeddedBroker, TopicSpec  # noqa: E402
from streams.topics import Topics  # noqa: E402

PARTITIONS = 8
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


def events_of(count: int) -> list[tuple[bytes, bytes]]:
    """``count`` simulated wire events as (key, value), sessions interleaved."""
    sessions = max(count // 700, 1)  # ~700 events per 5-minute session
    out = []
    for event in simulate(SimulationConfig(sessions=sessions, minutes=5, seed=11,
                                           style="mixed", session_stagger_ms=60_000)):
        out.append((event["session_id"].encode(), orjson.dumps(event)))
        if len(out) == count:
            break
    return out


async def ceiling(bootstrap: str, events: list[tuple[bytes, bytes]]) -> float:
    consumer = AIOKafkaConsumer(TOPICS.events, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", fetch_max_wait_ms=10)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    got = 0

    async def consume() -> None:
        nonlocal got
        while got < len(events):
            batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
            got += sum(len(m) for m in batches.values())

    started = time.perf_counter()
    reader = asyncio.create_task(consume())
    for key, value in events:
        await producer.send(TOPICS.events, value, key=key)
    await producer.flush()
    await reader
    elapsed = time.perf_counter() - started
    await producer.stop()
    await consumer.stop()
    return len(events) / elapsed


def measure_worker(command: list[str], port: int, total: int, label: str) -> float:
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
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
            time.sleep(0.02)
        if first is None or last is None:
            raise SystemExit(f"{label}: did not finish within 300 s")
        return total / (last - first)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def rapport_worker(bootstrap: str, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "services.cli", "worker", "--broker", f"kafka://{bootstrap}",
            "--partitions", str(PARTITIONS), "--declare-topics", "no", "--fetch-max-wait-ms", "10",
            "--web-port", str(port),
            *extra]


async def realtime(bootstrap: str, sessions: int, seconds: float, warmup: float,
                   port: int, pid: int) -> dict[str, float]:
    config = SimulationConfig(sessions=sessions, minutes=(seconds + 30) / 60, seed=5,
                              style="mixed", session_stagger_ms=5_000)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    consumer = AIOKafkaConsumer(TOPICS.quality, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="latest", fetch_max_wait_ms=5,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await producer.start()
    await consumer.start()
    latencies: list[float] = []
    produced = 0
    behind = 0.0
    started = time.time()
    measure_from = started + warmup
    stop = asyncio.Event()

    async def read_quality() -> None:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50, max_records=20_000)
            now = time.time()
            if now < measure_from:
                continue
            for messages in batches.values():
                for message in messages:
                    source = orjson.loads(message.value)["source"]["timestamp_ms"]
                    latencies.append(now * 1000 - source)

    reader = asyncio.create_task(read_quality())
    cpu_start = cpu_at_warmup = cpu_seconds(pid)
    warm_marked = False
    first_ms: int | None = None
    for delivery_ms, event in simulate_timed(config):
        first_ms = delivery_ms if first_ms is None else first_ms
        due = started + (delivery_ms - first_ms) / 1000
        if due > started + seconds:
            break
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            behind = max(behind, -delay)
        if not warm_marked and time.time() >= measure_from:
            cpu_at_warmup, warm_marked = cpu_seconds(pid), True
            produced_at_warmup = produced
        await producer.send(TOPICS.events, orjson.dumps(event),
                            key=event["session_id"].encode())
        produced += 1
    await producer.flush()
    elapsed = time.time() - measure_from
    cpu = cpu_seconds(pid) - cpu_at_warmup
    await asyncio.sleep(2)
    stop.set()
    await reader
    consumed_total = metric(port, "rapport_events_consumed_total")
    await producer.stop()
    await consumer.stop()
    values = np.array(latencies)
    del cpu_start
    return {
        "events_per_s": (produced - produced_at_warmup) / elapsed,
        "updates": float(len(values)),
        "p50_ms": float(np.percentile(values, 50)),
        "p99_ms": float(np.percentile(values, 99)),
        "max_ms": float(values.max()),
        "cpu_share": cpu / elapsed,
        "lag": float(produced - consumed_total),
        "producer_behind_ms": behind * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--sessions", type=int, default=2_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")

    events = events_of(args.events)
    with EmbeddedBroker() as broker:
        broker.create_topics([*TOPICS.specs(PARTITIONS),
                              TopicSpec("bench-naive-counts-changelog", PARTITIONS)])
        rate = asyncio.run(ceiling(broker.bootstrap, events))
        print(f"1. raw aiokafka produce+consume: {rate:,.0f} msgs/s ({len(events):,} events)")
        port = free_port()
        naive = measure_worker([sys.executable, str(ROOT / "bench" / "naive_agent.py"),
                                broker.bootstrap, str(PARTITIONS), str(port)],
                               port, len(events), "naive")
        print(f"2. naive Faust agent (table update per event): {naive:,.0f} events/s")
        port = free_port()
        ours = measure_worker(rapport_worker(broker.bootstrap, port), port, len(events),
                              "rapport")
        print(f"3. Rapport worker: {ours:,.0f} events/s = {ours / naive:.1f}x the naive agent "
              f"(target >= 3x), {ours / rate:.0%} of the raw ceiling")

    with EmbeddedBroker() as broker:
        broker.create_topics(TOPICS.specs(PARTITIONS))
        port = free_port()
        process = subprocess.Popen(rapport_worker(broker.bootstrap, port), cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while metric_or_zero(port, "rapport_partitions_assigned") < PARTITIONS:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("worker did not get its partitions")
                time.sleep(0.2)
            result = asyncio.run(realtime(broker.bootstrap, args.sessions, args.seconds,
                                          args.warmup, port, process.pid))
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
    print(f"4. real time, {args.sessions:,} concurrent sessions for {args.seconds:.0f} s "
          f"(first {args.warmup:.0f} s excluded): {result['events_per_s']:,.0f} events/s in, "
          f"{result['updates']:,.0f} quality updates; update latency p50 "
          f"{result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms (target < 500), max "
          f"{result['max_ms']:.0f} ms; worker CPU {result['cpu_share']:.0%} of one core; "
          f"lag at end {result['lag']:,.0f} records; producer at most "
          f"{result['producer_behind_ms']:.0f} ms behind schedule")


def metric_or_zero(port: int, name: str) -> float:
    try:
        return metric(port, name)
    except OSError:
        return 0.0


if __name__ == "__main__":
    main()
