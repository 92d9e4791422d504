"""Benchmark of the report service's session list (issue 5: "Reports of 1,000 sessions load
their list page in under 300 ms").

1. Runs the workers' logic (services/reports/samples.py) on simulated sessions and varies
   their final reports into ``--sessions`` (default 1,000) stored sessions: new ids, start
   times spread over ~3 months, 12 therapists, two clinics (90 % / 10 %); the first
   ``--timelines`` sessions also get their timelines and alerts.
2. Fills a fresh SQLite database (and a fresh schema of the local PostgreSQL when reachable,
   or ``RAPPORT_TEST_PG_URL``) with them through :class:`~services.store.ReportStore`.
3. Starts the real service, ``rapport reports --port 0 --db-url URL``, as a subprocess and
   times, over real HTTP on one keep-alive connection, ``--requests`` loads each of the HTML
   list page ``/sessions`` and ``GET /v1/sessions`` (default page, 50 sessions), a filtered
   page, and the whole list in one page (``limit=1000``); prints median and p95 against the
   300 ms target.

Usage: ``.venv/bin/python bench/reports_list.py [--sessions 1000] [--requests 200]``.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.simulation import SimulationConfig  # noqa: E402
from services.reports.samples import simulated_records  # noqa: E402
from services.store import ReportStore  # noqa: E402

KEY = "bench-pseudonym-key-0123456789abcdef"
PG_URL = os.environ.get("RAPPORT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
TARGET_MS = 300.0
DAY_MS = 86_400_000
ORIGIN_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def base_records(count: int, minutes: float) -> list[tuple[str, dict[str, Any]]]:
    config = SimulationConfig(sessions=count, minutes=minutes, seed=7, style="mixed")
    return [(r.role, orjson.loads(r.value)) for r in simulated_records(config)]


def varied(base: list[tuple[str, dict[str, Any]]], sessions: int, timelines: int
           ) -> Iterator[dict[str, Any]]:
    """``sessions`` report records (and, for the first ``timelines``, their quality and alert
    records) made from the base sessions with new ids, clinics, therapists and start times."""
    by_session: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for role, record in base:
        by_session.setdefault(record["session_id"], []).append((role, record))
    originals = list(by_session.values())
    for i in range(sessions):
        clinic = "c1" if i % 10 else "c2"
        session_id, therapist = f"bench-{i:05d}", f"therapist-{i % 12}"
        start = ORIGIN_MS + (i * 90 * DAY_MS) // sessions + (i % 7) * 3_600_000
        for role, record in originals[i % len(originals)]:
            if role != "reports" and i >= timelines:
                continue
            text = orjson.dumps(record).decode()
            text = text.replace(f'"{record["session_id"]}-t"', f'"{therapist}"')
            copy = orjson.loads(text.replace(f'"{record["session_id"]}"', f'"{session_id}"'))
            shift = start - record.get("start_ms", copy["event_time_ms"])
            copy["clinic_id"] = clinic
            if role == "reports":
                copy["report"]["clinic_id"] = clinic
                copy["start_ms"] = start
                copy["event_time_ms"] += shift
            yield copy


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str | None]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    try:
        import psycopg

        admin = PG_URL.replace("postgresql+psycopg://", "postgresql://")
        psycopg.connect(admin, connect_timeout=3).close()
    except Exception as error:  # unreachable or not installed: skip PostgreSQL
        print(f"PostgreSQL unreachable ({str(error).strip().splitlines()[0]}); skipped")
        yield None
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def server(url: str, workdir: Path) -> Iterator[tuple[str, int]]:
    env = {**os.environ, "RAPPORT_PSEUDONYM_KEY": KEY, "RAPPORT_DATA_DIR": str(workdir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "reports", "--port", "0", "--db-url", url],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if not line.startswith("reports: http://"):
            raise SystemExit(f"rapport reports did not start: {line!r}")
        host, port = line.removeprefix("reports: http://").rsplit(":", 1)
        yield host, int(port)
    finally:
        process.terminate()
        process.wait(20)


def timed(host: str, port: int, path: str, token: str, requests: int) -> tuple[list[float], int]:
    connection = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    times, size = [], 0
    for k in range(requests + 5):  # 5 warm-up requests
        began = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - began) * 1000
        if response.status != 200:
            raise SystemExit(f"GET {path}: {response.status} {body[:200]!r}")
        if k >= 5:
            times.append(elapsed)
        size = len(body)
    connection.close()
    return times, size


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def run(backend: str, args: argparse.Namespace, records: list[dict[str, Any]],
        workdir: Path) -> None:
    with database(backend, workdir) as url:
        if url is None:
            return
        began = time.perf_counter()
        with ReportStore(url, KEY.encode()) as store:
            for record in records:
                store.add_record(record)
            token, _ = store.create_token("c1", "reports")
            therapist = store.pseudonymize("therapist-3")
        filled = time.perf_counter() - began
        print(f"\n{backend}: {args.sessions} sessions stored in {filled:.1f} s")
        cases = [("HTML /sessions (50 per page)", "/sessions"),
                 ("JSON /v1/sessions (50 per page)", "/v1/sessions"),
                 ("HTML /sessions, therapist + alert filter",
                  f"/sessions?therapist={therapist}&alert=long_silence"),
                 ("HTML /sessions?limit=1000 (whole list)", "/sessions?limit=1000"),
                 ("JSON /v1/sessions?limit=1000 (whole list)", "/v1/sessions?limit=1000")]
        with server(url, workdir) as (host, port):
            print(f"{'page':<44} {'median':>9} {'p95':>9} {'bytes':>9}  target {TARGET_MS:.0f} ms")
            for label, path in cases:
                times, size = timed(host, port, path, token, args.requests)
                median, high = statistics.median(times), p95(times)
                verdict = "ok" if high < TARGET_MS else "OVER"
                print(f"{label:<44} {median:7.1f}ms {high:7.1f}ms {size:9,}  {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--timelines", type=int, default=50,
                        help="sessions that also get their timeline and alerts (default 50)")
    parser.add_argument("--base", type=int, default=20, help="simulated sessions to vary")
    parser.add_argument("--minutes", type=float, default=50.0)
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")
    began = time.perf_counter()
    base = base_records(args.base, args.minutes)
    records = list(varied(base, args.sessions, args.timelines))
    print(f"{args.base} simulated {args.minutes:g}-minute sessions through the workers' logic "
          f"in {time.perf_counter() - began:.1f} s; {len(records):,} records to store")
    with tempfile.TemporaryDirectory(prefix="rapport-bench-") as tmp:
        for backend in ("sqlite", "postgresql"):
            run(backend, args, records, Path(tmp))


if __name__ == "__main__":
    main()
