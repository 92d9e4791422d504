"""The main job of ``rapport run`` (services/cli/run.py registers the command): the embedded
broker or a real Kafka, the worker processes, the feed, the collector, and the ``--port``
server. Imported only when the command runs, so other commands do not pay for it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import IO, Any

import orjson
from aiohttp import web

from models.config import PipelineConfig
from models.errors import ConfigError, ValidationError
from models.events import SessionStart, parse_json
from models.simulation import SimulationConfig, simulate_timed
from models.topics import DEFAULT_APP_ID, Topics, session_key
from services.broker import BrokerError, EmbeddedBroker, announce, withdraw
from services.cli.ingest import sdk_options
from services.cli.summary import format_summary
from services.collector import Collector
from services.feeder import Feeder, FeedError, feed_key
from services.ingest import IngestConfig
from services.ingest.publisher import KafkaPublisher
from services.kafka_admin import KafkaAdminError, ensure_topics, rapport_topics
from services.reports import LiveConsumer, LiveHub
from services.reports.consumer import StoreConsumer
from services.reports.purge_schedule import add_purge_schedule
from services.store import ReportStore
from services.store.pseudonyms import Pseudonymizer, load_key
from services.web import JobHealth, WorkerEndpoint, server_options, start_site
from services.web import build_app as web_app
from streams.broker_probe import BrokerProbe, bootstrap_servers, faust_broker

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 2.0
_PR_SET_PDEATHSIG = 1
# A file has no delivery times: its events are grouped per session over this many lines.
FILE_GROUP_LINES = 1_000


def run(args: argparse.Namespace) -> int:
    if args.workers < 1 or args.partitions < 1:
        print("rapport run: --workers and --partitions must be >= 1", file=sys.stderr)
        return 2
    if args.events and args.events != "-" and not os.path.exists(args.events):
        print(f"rapport run: cannot read {args.events}: no such file", file=sys.stderr)
        return 2
    topics = Topics()
    # SIGTERM stops the job like Ctrl-C: workers stopped, broker closed, files flushed.
    signal.signal(signal.SIGTERM, _interrupt)
    broker: EmbeddedBroker | None = None
    try:
        if args.broker:
            bootstrap = bootstrap_servers(args.broker)
            created = ensure_topics(bootstrap, rapport_topics(args.partitions, topics=topics),
                                    security=args.config.kafka)
            print(f"rapport run: Kafka at {bootstrap}; topics created: "
                  f"{', '.join(created) or 'none (all present)'}", file=sys.stderr)
        else:
            broker = EmbeddedBroker()
            bootstrap = broker.start()
            broker.create_topics(topics.specs(args.partitions, DEFAULT_APP_ID))
            announce(bootstrap)
            print(f"rapport run: embedded broker at {bootstrap}", file=sys.stderr)
    except (BrokerError, KafkaAdminError) as error:
        if broker is not None:
            broker.close()
        print(f"rapport run: {error}", file=sys.stderr)
        return 1
    ports = [free_port() for _ in range(args.workers)] if args.port is not None else []
    workers = [_start_worker(args, bootstrap, k, ports[k] if ports else None,
                             embedded=broker is not None)
               for k in range(args.workers)]
    out: IO[bytes] = sys.stdout.buffer if args.reports == "-" else open(args.reports, "wb")  # noqa: SIM115
    dead: IO[bytes] | None = open(args.dead_letters, "wb") if args.dead_letters else None  # noqa: SIM115
    try:
        return asyncio.run(_main(args, bootstrap, topics, workers, ports, out, dead))
    except FeedError as error:
        print(f"rapport run: {error}", file=sys.stderr)
        return 1
    finally:
        _stop_workers(workers)
        if out is not sys.stdout.buffer:
            out.close()
        if dead is not None:
            dead.close()
        if broker is not None:
            withdraw()
            broker.close()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_worker(args: argparse.Namespace, bootstrap: str, index: int,
                  web_port: int | None, *, embedded: bool) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "services.cli"]
    if args.log_level:
        command += ["--log-level", args.log_level]
    for setting in args.settings:
        command += ["--set", setting]
    command += ["worker", "--broker", faust_broker(bootstrap), "--partitions",
                str(args.partitions), "--declare-topics", "no",
                # Committed offsets lag by about this much, and the feeder stays within 2 MiB
                # per partition of them (services/feeder.py): 10 s would throttle a bulk run.
                "--checkpoint-interval-s", "2"]
    if embedded:  # its fetches wait out the whole max wait (streams/kafka.py, point 6)
        command += ["--broker-kind", "embedded", "--fetch-max-wait-ms", "10",
                    "--fetch-min-interval-ms", "20"]
    if args.idle_timeout_s is not None:
        command += ["--idle-timeout-s", str(args.idle_timeout_s)]
    if args.end_grace_ms is not None:
        command += ["--end-grace-ms", str(args.end_grace_ms)]
    if web_port is not None:
        command += ["--web-port", str(web_port)]
    log.info("starting worker %d: %s", index, " ".join(command))
    # Worker stdout goes to stderr: stdout may be carrying the reports.
    return subprocess.Popen(command, stdout=sys.stderr.fileno(), preexec_fn=_die_with_parent)


def _die_with_parent() -> None:
    """In the child before exec (Linux): get SIGTERM when `rapport run` dies, however it dies,
    so no worker outlives the job (and its embedded broker)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for worker in workers:
        try:
            worker.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


async def _main(args: argparse.Namespace, bootstrap: str, topics: Topics,
                workers: list[subprocess.Popen[bytes]], ports: list[int], out: IO[bytes],
                dead: IO[bytes] | None) -> int:
    def write_report(report: dict[str, Any]) -> None:
        out.write(orjson.dumps(report) + b"\n")
        out.flush()
        if args.summary:
            sys.stdout.write(format_summary(report) + "\n")
            sys.stdout.flush()

    def write_dead_letter(record: dict[str, Any]) -> None:
        if dead is not None:
            dead.write(orjson.dumps(record) + b"\n")
            dead.flush()

    # SIGTERM (`docker stop`, a supervisor) cancels this task, as asyncio.run does on Ctrl-C,
    # so the cleanup below runs while aiokafka's own tasks still run. Raised as
    # KeyboardInterrupt from a plain signal handler, it had asyncio.run cancel every task at
    # once: the report store consumer's LeaveGroup then went unanswered, the job waited
    # LEAVE_TIMEOUT_S (services/reports/consumer.py) and the group waited out the member.
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    terminated = asyncio.Event()

    def terminate() -> None:
        terminated.set()
        if main is not None:
            main.cancel()

    loop.add_signal_handler(signal.SIGTERM, terminate)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if args.port is not None:
                await stack.enter_async_context(_web(args, bootstrap, workers, ports))
            return await _run(args, bootstrap, topics, workers, write_report,
                              write_dead_letter)
    except asyncio.CancelledError:
        if not terminated.is_set():
            raise
        raise KeyboardInterrupt from None  # the CLI's exit status for an interrupt (130)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _interrupt)  # the rest of run(): as before the loop


def _alive(process: subprocess.Popen[bytes]) -> bool:
    return process.poll() is None


@contextlib.asynccontextmanager
async def _web(args: argparse.Namespace, bootstrap: str,
               workers: list[subprocess.Popen[bytes]], ports: list[int]) -> AsyncIterator[None]:
    """The --port server and the report store consumer, for the life of the job."""
    store = ReportStore.from_settings(args.config)
    endpoints = [WorkerEndpoint(k, port, functools.partial(_alive, worker))
                 for k, (worker, port) in enumerate(zip(workers, ports, strict=True))]
    security = args.config.kafka
    probe = BrokerProbe(bootstrap, security)
    health = JobHealth(store, endpoints, broker_check=probe.check)
    hub = LiveHub(hide=store.pseudonymize.apply)
    app = web_app(store, KafkaPublisher(bootstrap, security=security), health, live=hub,
                  ingest=IngestConfig(vad_backend=args.config.vad_backend,
                                      vad_music_gate=args.config.vad_music_gate,
                                      **args.config.ingest_overrides,
                                      **sdk_options(args)))
    add_purge_schedule(app, store, args.config.purge_interval_s)  # retention (issue 19)
    consumer = StoreConsumer(store, bootstrap, security=security)
    live = LiveConsumer(hub, bootstrap, security=security)
    runner = web.AppRunner(app, access_log=None, **server_options())
    await runner.setup()
    try:
        await start_site(runner, args.host, args.port)
    except ConfigError:
        await runner.cleanup()
        raise
    await consumer.start()
    consuming = asyncio.create_task(consumer.run())
    await live.start()
    tailing = asyncio.create_task(live.run())
    token, _ = await asyncio.to_thread(store.create_token, "all", "admin")
    print(f"rapport run: serving http://{args.host}:{args.port}/sessions (reports), /live, "
          f"/join, /v1/events, /healthz, /readyz, /metrics; admin token: {token}",
          file=sys.stderr, flush=True)
    try:
        yield
    finally:
        await live.stop()
        tailing.cancel()
        await consumer.stop()
        consuming.cancel()
        for task in (consuming, tailing):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await runner.cleanup()
        await probe.close()
        store.close()


async def _run(args: argparse.Namespace, bootstrap: str, topics: Topics,
               workers: list[subprocess.Popen[bytes]],
               write_report: Callable[[dict[str, Any]], None],
               write_dead_letter: Callable[[dict[str, Any]], None]) -> int:
    feeder = Feeder(bootstrap, topics.events, DEFAULT_APP_ID, topics.dlq,
                    max_event_bytes=PipelineConfig().max_record_bytes,
                    security=args.config.kafka)
    collector = Collector(bootstrap, topics, write_report, write_dead_letter,
                          security=args.config.kafka)
    await feeder.start()
    await collector.start()
    sessions: set[str] = set()
    started = time.monotonic()
    progress = _Progress(feeder, collector, sessions, started)
    feeding = asyncio.create_task(_feed(args, feeder, sessions) if args.events
                                  or args.sessions > 0 else asyncio.sleep(0))
    try:
        while True:
            await collector.poll()
            progress.maybe_print()
            crashed = [w for w in workers if w.poll() is not None]
            if crashed:
                print(f"rapport run: a worker exited with status {crashed[0].returncode}",
                      file=sys.stderr)
                return 1
            if feeding.done():
                feeding.result()  # re-raise a feed error
                if args.exit_when_done and sessions <= collector.done:
                    progress.print(final=True)
                    return 0
    finally:
        feeding.cancel()
        with contextlib.suppress(asyncio.CancelledError, FeedError):
            await feeding
        await feeder.close()
        await collector.close()


async def _feed(args: argparse.Namespace, feeder: Feeder, sessions: set[str]) -> None:
    """Publish the file's or the simulation's events, each keyed by its session key (the
    clinic from its session's ``session.start``; models/topics.py) with its participant ids
    pseudonymized (issue 16 finding 5), as the ingest does."""
    origin = args.events or "simulation"
    hide = Pseudonymizer(load_key(args.config.pseudonym_key, args.config.data_dir))
    # A file may hold a session's events before its start: its clinics are read first.
    clinics = _file_clinics(args.events) if args.events and args.events != "-" else {}
    number = 0
    async for number, line in _lines(args):
        if not line:  # a new moment of the input: send the groups of the last one
            await feeder.end_group()
            continue
        key = None
        try:
            event = parse_json(line)
        except ValidationError:
            # Still published: the workers put it on the dead-letter topic with the reason.
            key = feed_key(line, clinics)
        else:
            if isinstance(event, SessionStart):
                clinics.setdefault(event.session_id, event.clinic_id)
            clinic = clinics.get(event.session_id)
            # Without a known clinic the key is the bare id: dead-lettered naming "key".
            key = session_key(clinic, event.session_id) if clinic is not None \
                else event.session_id.encode()
            sessions.add(key.decode())
        if b"participant" in line:
            line = _pseudonymized(line, hide)
        await feeder.publish(line, key, origin=origin, number=number)
    await feeder.flush()
    log.info("feed complete: %d events published", feeder.stats.published)


async def _lines(args: argparse.Namespace) -> AsyncIterator[tuple[int, bytes]]:
    """(line number, event) from the file or the simulation; an empty event marks a new
    moment (a new delivery time, or every ``FILE_GROUP_LINES`` lines of a file)."""
    if args.events:
        for number, line in _file_lines(args.events):
            yield number, line
            if number % FILE_GROUP_LINES == 0:
                yield number, b""
        return
    config = SimulationConfig(sessions=args.sessions, minutes=args.minutes, seed=args.seed,
                              style=args.style)
    started = time.monotonic()
    first: int | None = None
    previous = None
    for number, (delivery_ms, event) in enumerate(simulate_timed(config), 1):
        if delivery_ms != previous:
            previous = delivery_ms
            yield number, b""
        if args.speed > 0:
            first = delivery_ms if first is None else first
            due = started + (delivery_ms - first) / 1000 / args.speed
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        yield number, orjson.dumps(event)


def _pseudonymized(line: bytes, hide: Pseudonymizer) -> bytes:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return line
    return orjson.dumps(hide.apply(value)) if isinstance(value, dict) else line


def _file_clinics(path: str) -> dict[str, str]:
    """Each session's clinic, from the file's ``session.start`` events (first one wins)."""
    clinics: dict[str, str] = {}
    for _, line in _file_lines(path):
        if b"session.start" not in line:
            continue
        try:
            event = parse_json(line)
        except ValidationError:
            continue
        if isinstance(event, SessionStart):
            clinics.setdefault(event.session_id, event.clinic_id)
    return clinics


def _file_lines(path: str) -> Iterator[tuple[int, bytes]]:
    stream = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    with stream:
        for number, line in enumerate(stream, 1):
            line = line.rstrip(b"\r\n")
            if line.strip():
                yield number, line


class _Progress:
    def __init__(self, feeder: Feeder, collector: Collector, sessions: set[str],
                 started: float) -> None:
        self.feeder = feeder
        self.collector = collector
        self.sessions = sessions
        self.started = started
        self._last = started
        self._last_published = 0

    def maybe_print(self) -> None:
        if time.monotonic() - self._last >= PROGRESS_EVERY_S:
            self.print()

    def print(self, final: bool = False) -> None:
        now = time.monotonic()
        published = self.feeder.stats.published
        rate = (published - self._last_published) / max(now - self._last, 1e-9)
        self._last, self._last_published = now, published
        stats = self.collector.stats
        closed = len(self.collector.done & self.sessions)
        label = "done" if final else "run"
        print(
            f"[{label} {now - self.started:6.1f} s] events {published:,} published "
            f"({rate:,.0f}/s) | sessions {len(self.sessions) - closed} open, {closed} closed "
            f"| alerts {sum(stats.alerts.values())} | dead letters "
            f"{sum(stats.rejected.values())}",
            file=sys.stderr, flush=True)
