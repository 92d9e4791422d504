"""The report pages in a real browser (issue 5 acceptance): headless Chromium (DevTools
protocol, tests/integration/cdp.py) against ``rapport run --port`` streaming three simulated
sessions at six times real time.

It signs in through the page's form (the cookie), watches ``/live`` update without a reload
while the sessions stream (the dashboard's ``data-updates`` counter and ``data-snapshot-at``
time advance, and a marker set on ``window`` survives), sees the sessions leave the dashboard
as their reports arrive, then loads ``/sessions`` and a session's report, and checks that the
speech timeline has one turn marker per turn of each role of the report's JSON
(``/v1/sessions/{id}/report``). Screenshots go to ``tmp_path`` and ``out/screenshots/``.

Skipped when Chromium is missing (``apt-get install -y chromium``), except with ``CI=true``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cdp import Chromium, Tab, chromium_binary, kill_group
from harness import free_port

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = 3
LIVE_STATE = ("(() => { const r = document.getElementById('live'); return {updates: "
              "Number(r.dataset.updates), at: r.dataset.snapshotAt, rows: "
              "r.querySelectorAll('tbody tr').length, marker: window.__notReloaded === 1, "
              "text: r.querySelector('tbody').innerText}; })()")

pytestmark = pytest.mark.slow


@pytest.fixture
def chromium() -> str:
    found = chromium_binary()
    if found is None:
        reason = "Chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it")
        pytest.skip(reason)
    return found


class Job:
    """``rapport run --port`` as a subprocess (its own process group); stderr in a file."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.stderr = tmp_path / "run.stderr"
        env = {**os.environ, "RAPPORT_DATA_DIR": str(tmp_path / "data"),
               "RAPPORT_DB_URL": f"sqlite:///{tmp_path / 'reports.db'}",
               "RAPPORT_RUNTIME_DIR": str(tmp_path / "runtime")}
        with open(self.stderr, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "run", "--port", str(self.port),
                 "--sessions", str(SESSIONS), "--minutes", "2", "--speed", "6",
                 "--reports", str(tmp_path / "reports.jsonl")],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err,
                stdin=subprocess.DEVNULL, start_new_session=True)

    async def token(self, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"admin token: (\S+)", self.stderr.read_text(errors="replace"))
            if found:
                return found.group(1)
            assert self.process.poll() is None, self.log_tail()
            await asyncio.sleep(0.2)
        raise TimeoutError(f"no admin token on stderr: {self.log_tail()}")

    def log_tail(self) -> str:
        return self.stderr.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        import signal

        kill_group(self.process, grace=30, first=signal.SIGINT)


async def sign_in(tab: Tab, base: str, token: str) -> None:
    """The page's own form: the server answers with the cookie and a redirect to /live."""
    await tab.navigate(f"{base}/signin?next=/live")
    await tab.evaluate(
        f"(() => {{ const f = document.querySelector('main form[action=\"/signin\"]'); "
        f"f.querySelector('input[name=token]').value = {token!r}; f.submit(); }})()")
    await tab.wait_for("location.pathname === '/live' && document.readyState === 'complete' "
                       "&& document.getElementById('live') !== null")


async def finished(http: aiohttp.ClientSession, base: str, token: str) -> dict[str, str]:
    """Ids of the sessions whose reports are stored, with their clinics."""
    async with http.get(f"{base}/v1/sessions", headers={"Authorization": f"Bearer {token}"}
                        ) as answer:
        assert answer.status == 200
        return {s["session_id"]: s["clinic_id"] for s in (await answer.json())["sessions"]}


async def browse(job: Job, tab: Tab, shots: Path) -> dict[str, Any]:
    token = await job.token()
    await sign_in(tab, job.base, token)
    await tab.evaluate("window.__notReloaded = 1")
    first = await tab.wait_for(f"(() => {{ const s = {LIVE_STATE}; "
                               "return s.updates >= 1 && s.rows >= 1 ? s : null; })()", 60)
    later = await tab.wait_for(
        f"(() => {{ const s = {LIVE_STATE}; return s.updates >= {first['updates'] + 3} "
        f"&& s.at !== {first['at']!r} && s.rows >= 1 ? s : null; }})()", 60)
    await tab.screenshot(shots / "live.png")
    assert later["marker"], "the dashboard reloaded instead of updating in place"
    assert later["at"] > first["at"] and later["updates"] > first["updates"]
    assert "%" in later["text"]  # talk shares are shown

    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 180
        while len(ids := await finished(http, job.base, token)) < SESSIONS:
            assert time.monotonic() < deadline, f"only {ids} finished: {job.log_tail()}"
            assert job.process.poll() is None, job.log_tail()
            await asyncio.sleep(1)
        # Reports end their sessions on the dashboard too (the page was never reloaded).
        ended = await tab.wait_for(f"(() => {{ const s = {LIVE_STATE}; "
                                   "return s.rows === 0 ? s : null; })()", 60)
        assert ended["marker"] and ended["updates"] > later["updates"]
        await tab.screenshot(shots / "live-ended.png")
        session_id = sorted(ids)[0]
        # The admin token names the session's clinic (issue 16).
        async with http.get(f"{job.base}/v1/sessions/{session_id}/report",
                            params={"clinic": ids[session_id]},
                            headers={"Authorization": f"Bearer {token}"}) as answer:
            report = (await answer.json())["report"]

    await tab.navigate(f"{job.base}/sessions")
    listed = await tab.evaluate("Array.from(document.querySelectorAll('main table "
                                "a[href^=\"/sessions/\"]')).map(a => a.textContent)")
    assert sorted(listed) == sorted(ids)
    await tab.screenshot(shots / "sessions.png")

    await tab.navigate(f"{job.base}/sessions/{session_id}?clinic={ids[session_id]}")
    markers = await tab.evaluate(
        "(() => { const found = {}; document.querySelectorAll('svg.timeline [data-turn]')"
        ".forEach(m => { const r = m.getAttribute('data-turn'); found[r] = (found[r] || 0) "
        "+ 1; }); return found; })()")
    await tab.screenshot(shots / "report.png")
    expected = {role: figures["turns"] for role, figures in report["roles"].items()
                if figures.get("turns")}
    assert markers == expected, (markers, expected)
    return {"session_id": session_id, "turns": expected, "live_updates": ended["updates"]}


def test_reports_and_live_dashboard_in_chromium(chromium: str, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    job = Job(tmp_path)
    browser = Chromium(chromium, tmp_path / "profile", tmp_path / "chromium.log")

    async def scenario() -> dict[str, Any]:
        tab = await browser.tab()
        try:
            return await browse(job, tab, shots)
        finally:
            await tab.close()
            await browser.close()

    try:
        outcome = asyncio.run(asyncio.wait_for(scenario(), 400))
    finally:
        job.stop()
        if browser.process.poll() is None:
            kill_group(browser.process)
        saved = ROOT / "out" / "screenshots"
        saved.mkdir(parents=True, exist_ok=True)
        for shot in shots.glob("*.png"):
            shutil.copy(shot, saved / shot.name)
    assert sum(outcome["turns"].values()) > 10
    names = {p.name for p in shots.glob("*.png")}
    assert names == {"live.png", "live-ended.png", "sessions.png", "report.png"}
    assert all((shots / n).stat().st_size > 10_000 for n in names)
