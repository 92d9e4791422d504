"""The browser SDK in real Chromium (issue 18 acceptance): two headless Chromium processes in
a direct WebRTC call on loopback — no Rapport in the media path — each playing a labelled WAV
as its fake microphone (the clips of test_browser_join.py). Their pages come from a tiny page
server on another origin than Rapport, which also relays the call's offer and answer. Only the
therapist's page loads the SDK, ``import { attach } from "http://127.0.0.1:PORT/sdk/rapport.js"``,
with a session token minted by the "platform" (this test) from its ingest token; it forwards
its local microphone (WebAudio RMS) and the client's receiver (``getSynchronizationSources``)
as ``levels`` over the ingest WebSocket, and renders the coach.

Processes: ``rapport run --port P --sessions 0`` (embedded broker, a worker, the reports, the
coach stream) and, apart, ``rapport ingest --port I --broker <run's broker>``, the SDK's
endpoint, which the test restarts in the middle of the client's speech. Acceptance:

- the final report's talk time per role within 3 % of the WAVs' truth, and every speech
  boundary within 80 ms, after one constant offset per participant (where a WAV starts on the
  session clock is not observable to the ms; see test_browser_join.py) — so the restart lost
  no voice activity: the SDK kept and resent what was not acknowledged (no drop reported);
- the coach updated in the therapist's page; the client's session token, and no token, cannot
  read the coach stream.

Skipped when Chromium is missing, except with ``CI=true`` (a failure there).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cdp import Chromium, Tab
from harness import ROOT, free_port
from test_browser_join import CHROMIUM, SCRIPT, Wav, build_wav, ipus, stop_group

pytestmark = pytest.mark.slow

PAGES = Path(__file__).resolve().parent / "sdk_pages"
TALK_TOLERANCE = 0.03
BOUNDARY_MS = 80
MAX_START_ERROR_MS = 500  # as in test_browser_join.py: capture-to-send latency, not placement
CLINIC = "c1"
RESTART_AT_MS = 9_000  # into the therapist's WAV: the client is speaking then
COACH_WAIT_S = 30  # after the WAVs end, for the coach to show the talk share

if not CHROMIUM.exists():
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} missing (apt-get install -y chromium); required with CI=true",
                    pytrace=False)
    pytest.skip(f"{CHROMIUM} missing: apt-get install -y chromium", allow_module_level=True)


class PageServer:
    """The platform's web server, on its own origin: the two pages and a signalling relay
    (``POST``/``GET /signal/ROOM/offer|answer``)."""

    def __init__(self) -> None:
        slots: dict[str, bytes] = {}
        lock = threading.Lock()
        self.sdk_url = ""  # set once Rapport runs (it needs this server's origin first)
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:  # keep pytest's output clean
                pass

            def _send(self, status: int, body: bytes = b"", kind: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = urllib.parse.urlsplit(self.path).path
                if path in ("/therapist.html", "/client.html"):
                    page = (PAGES / path[1:]).read_text().replace("__RAPPORT_SDK__", pages.sdk_url)
                    self._send(200, page.encode(), "text/html; charset=utf-8")
                elif path.startswith("/signal/"):
                    with lock:
                        found = slots.get(path)
                    self._send(200, found, "application/json") if found else self._send(204)
                else:
                    self._send(404)

            def do_POST(self) -> None:
                path = urllib.parse.urlsplit(self.path).path
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    slots[path] = body
                self._send(204)

        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _request(url: str, method: str = "GET", token: str | None = None,
             body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            raw = answer.read()
            if answer.headers.get("Content-Type", "").startswith("application/json"):
                return answer.status, json.loads(raw)
            return answer.status, raw
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, None


class Rapport:
    """``rapport run --port P --sessions 0`` and a restartable ``rapport ingest`` on its
    broker, sharing the token store; the page origin allowed by both (CORS)."""

    def __init__(self, directory: Path, page_origin: str) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ingest_port = free_port()
        self.ingest_url = f"http://127.0.0.1:{self.ingest_port}"
        self.page_origin = page_origin
        self.env = {**os.environ, "RAPPORT_DATA_DIR": str(directory / "data"),
                    "RAPPORT_DB_URL": f"sqlite:///{directory / 'reports.db'}",
                    "RAPPORT_CORS_ORIGINS": page_origin,
                    "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR",
                                                      str(ROOT / "build" / "numba-cache"))}
        self.log = directory / "run.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "run", "--port", str(self.port),
                 "--sessions", "0", "--end-grace-ms", "0", "--cors-origin", page_origin,
                 "--reports", str(directory / "reports.jsonl")],
                cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True)
        self.admin = self._from_log(r"admin token: (\S+)")
        self.bootstrap = self._from_log(r"embedded broker at (\S+)")
        deadline = time.monotonic() + 90
        while _request(f"{self.url}/readyz", token=self.admin)[0] != 200:  # the worker is up
            assert time.monotonic() < deadline and self.process.poll() is None, self.tail()
            time.sleep(0.5)
        created = subprocess.run(
            [sys.executable, "-m", "services.cli", "tokens", "create", "--clinic", CLINIC,
             "--scope", "ingest"], cwd=ROOT, env=self.env, capture_output=True, text=True,
            check=True)
        self.ingest_token = created.stdout.strip().splitlines()[-1]
        self.ingest: subprocess.Popen[bytes] | None = None
        self.ingest_log = directory / "ingest.log"
        self.start_ingest()

    def _from_log(self, pattern: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log.read_text(errors="replace"))
            if found:
                return found.group(1)
            assert self.process.poll() is None, self.tail()
            time.sleep(0.2)
        raise AssertionError(f"rapport run did not print {pattern}\n{self.tail()}")

    def start_ingest(self) -> None:
        with open(self.ingest_log, "ab") as out:
            self.ingest = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "ingest", "--port", str(self.ingest_port),
                 "--broker", self.bootstrap, "--cors-origin", self.page_origin],
                cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True)
        deadline = time.monotonic() + 60
        while _request(f"{self.ingest_url}/sdk/rapport.js")[0] != 200:
            assert self.ingest.poll() is None, self.ingest_log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "rapport ingest did not serve /sdk/rapport.js"
            time.sleep(0.1)

    def restart_ingest(self) -> float:
        """Stop the ingest (SIGTERM; SIGKILL after 3 s: with a WebSocket open it waits for
        aiohttp's shutdown timeout) and start it again on the same port; seconds it was down."""
        assert self.ingest is not None
        began = time.monotonic()
        stop_group(self.ingest, 3)
        self.start_ingest()
        return time.monotonic() - began

    def session_token(self, session: str, participant: str, role: str) -> str:
        status, body = _request(f"{self.ingest_url}/v1/session-tokens", "POST", self.ingest_token,
                                {"session_id": session, "participant_id": participant,
                                 "role": role, "ttl_s": 600})
        assert status == 201, (status, body)
        assert body["session_id"] == session and body["role"] == role
        return str(body["token"])

    def reports_token(self) -> str:
        """A reports token of the same clinic (it reads reports, not the coach)."""
        created = subprocess.run(
            [sys.executable, "-m", "services.cli", "tokens", "create", "--clinic", CLINIC,
             "--scope", "reports"], cwd=ROOT, env=self.env, capture_output=True, text=True,
            check=True)
        return created.stdout.strip().splitlines()[-1]

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])

    def stop(self) -> None:
        if self.ingest is not None:
            stop_group(self.ingest, 20)
        stop_group(self.process, 30)


class FakeMicChromium(Chromium):
    """A headless Chromium (cdp.py) whose microphone plays ``wav``, on ``url``."""

    def __init__(self, binary: str, profile: Path, wav: Path, url: str) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        self._log = open(profile / "chromium.log", "ab")  # noqa: SIM115
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--use-fake-ui-for-media-stream",
                 "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={wav}%noloop",
                 "--allow-loopback-in-peer-connection",
                 "--autoplay-policy=no-user-gesture-required"]
        self.process = subprocess.Popen(
            [binary, *flags, f"--user-data-dir={profile}", "--remote-debugging-port=0", url],
            stdout=self._log, stderr=self._log, stdin=subprocess.DEVNULL,
            start_new_session=True)
        self._profile = profile
        self._http = None


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Wav]:
    directory = tmp_path_factory.mktemp("wav")
    return {role: build_wav(parts, directory / f"{role}.wav") for role, parts in SCRIPT.items()}


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[tuple[Rapport, PageServer]]:
    # The page server first: Rapport allows its origin; the pages import the SDK from Rapport.
    pages = PageServer()
    rapport = Rapport(tmp_path, pages.origin)
    pages.sdk_url = f"{rapport.ingest_url}/sdk/rapport.js"
    try:
        yield rapport, pages
    finally:
        pages.stop()
        rapport.stop()


async def _drive(rapport: Rapport, pages: PageServer, wavs: dict[str, Wav], session: str,
                 therapist_token: str, directory: Path) -> dict[str, Any]:
    room = uuid.uuid4().hex[:8]
    query = urllib.parse.urlencode({
        "room": room, "session": session, "clinic": CLINIC, "token": therapist_token,
        "endpoint": rapport.ingest_url, "coach": rapport.url or ""})
    browsers = {
        "client": FakeMicChromium(str(CHROMIUM), directory / "client", wavs["client"].path,
                                  f"{pages.origin}/client.html?room={room}"),
        "therapist": FakeMicChromium(str(CHROMIUM), directory / "therapist",
                                     wavs["therapist"].path,
                                     f"{pages.origin}/therapist.html?{query}"),
    }
    tabs: dict[str, Tab] = {}
    try:
        for role, browser in browsers.items():
            tabs[role] = await browser.tab()
        therapist = tabs["therapist"]
        await therapist.wait_for("document.body.dataset.state === 'streaming' || "
                                 "document.body.dataset.state.startsWith('error')", 60)
        state = await therapist.evaluate("document.body.dataset.state")
        assert state == "streaming", state
        await tabs["client"].wait_for("document.body.dataset.microphoneMs", 30)
        opened = {role: float(await tab.evaluate("document.body.dataset.microphoneMs"))
                  for role, tab in tabs.items()}
        # Restart the ingest while the client speaks (RESTART_AT_MS into the therapist's WAV).
        await asyncio.sleep(max(opened["therapist"] + RESTART_AT_MS - time.time() * 1000, 0)
                            / 1000)
        down_s = await asyncio.to_thread(rapport.restart_ingest)
        finish = max(opened[r] + wavs[r].end_ms for r in wavs) + 2_000
        await asyncio.sleep(max(finish - time.time() * 1000, 0) / 1000)
        # The coach follows the live numbers, which run the lateness allowance behind the
        # newest known time and catch up only once the SDK has resent what the restart held
        # back (its reconnect backoff reached 6.7 s of outage in one CI run): wait for the
        # share rather than read it at a fixed time. A coach that never shows it still fails.
        with contextlib.suppress(TimeoutError):  # the assertions below say what it showed
            await therapist.wait_for("window.coachShares.some((s) => s !== null)",
                                     COACH_WAIT_S)
        coach = await therapist.evaluate(
            "({updates: window.coachUpdates, shares: window.coachShares, "
            "state: document.getElementById('coach').dataset.rapportCoach, "
            "text: document.getElementById('coach').innerText})")
        status = await therapist.evaluate("window.tap.close({endSession: true})")
        drops = await therapist.evaluate("window.drops")
        errors = await therapist.evaluate("window.errors")
        remote_ts = await therapist.evaluate(
            "window.pc.getReceivers().map(r => r.getSynchronizationSources().length)")
    finally:
        for tab in tabs.values():
            await tab.close()
        for browser in browsers.values():
            await browser.close()
    return {"opened": opened, "down_s": down_s, "coach": coach, "status": status,
            "drops": drops, "errors": errors, "sources": remote_ts}


def test_sdk_in_the_therapists_page_reports_both_sides(
        platform: tuple[Rapport, PageServer], wavs: dict[str, Wav], tmp_path: Path) -> None:
    rapport, pages = platform
    session = f"sdk-{uuid.uuid4().hex[:8]}"
    therapist_token = rapport.session_token(session, "therapist-1", "therapist")
    client_token = rapport.session_token(session, "client-1", "client")
    run = asyncio.run(_drive(rapport, pages, wavs, session, therapist_token, tmp_path))
    status = run["status"]
    print(f"ingest down {run['down_s']:.1f} s; SDK status {status}; errors {run['errors']}")
    assert status["state"] == "closed" and status["pendingEvents"] == 0, status
    assert status["reconnects"] >= 1, "the ingest restart was not seen"
    assert status["eventsDropped"] == 0 and not run["drops"], run["drops"]
    assert status["eventsRejected"] == 0, run["errors"]
    # The coach updated in the therapist's page; nobody else may read the stream.
    print(f"coach: {run['coach']}")
    assert run["coach"]["updates"] >= 2 and run["coach"]["state"] in ("live", "reconnecting")
    assert any(share is not None for share in run["coach"]["shares"]), run["coach"]
    assert "Your share of the talking" in run["coach"]["text"]
    coach_url = f"{rapport.url}/v1/sessions/{session}/coach"
    assert _request(coach_url, token=client_token)[0] in (403, 404)
    assert _request(coach_url, token=rapport.reports_token())[0] in (403, 404)
    assert _request(coach_url)[0] == 401

    deadline = time.monotonic() + 90
    while (answer := _request(f"{rapport.url}/v1/sessions/{session}/report",
                              token=rapport.admin))[0] != 200:
        assert answer[0] == 404, answer
        assert time.monotonic() < deadline, f"no report\n{rapport.tail()}"
        time.sleep(0.5)
    report = answer[1]["report"]
    status_code, timeline = _request(
        f"{rapport.url}/v1/sessions/{session}/timeline?kind=ipu&limit=1000", token=rapport.admin)
    assert status_code == 200, timeline
    problems = []
    offset_ms = status["offsetMs"] or 0.0
    for role, wav in wavs.items():
        talk_ms = report["roles"][role]["talk_s"] * 1000
        error = talk_ms / wav.talk_ms - 1
        found = ipus(timeline["items"], role)
        print(f"sdk {role}: talk {talk_ms:.0f} ms vs truth {wav.talk_ms} ms ({error:+.1%}); "
              f"{len(found)} segments vs {len(wav.speech_ms)}")
        if abs(error) > TALK_TOLERANCE:
            problems.append(f"{role}: talk time {error:+.1%} off")
        if len(found) != len(wav.speech_ms):
            problems.append(f"{role}: segments {found} vs truth {wav.speech_ms}")
            continue
        differences = [got - want for pair, truth in zip(found, wav.speech_ms, strict=True)
                       for got, want in zip(pair, truth, strict=True)]
        offset = float(np.median(differences))
        residuals = [round(d - offset) for d in differences]
        # The page clock (both pages run on this machine) mapped to the session clock.
        start_error = offset - (run["opened"][role] + offset_ms)
        print(f"sdk {role}: WAV start {start_error:+.0f} ms from the microphone opening; "
              f"boundary residuals (ms) {residuals}")
        if abs(start_error) > MAX_START_ERROR_MS:
            problems.append(f"{role}: WAV placed {start_error:+.0f} ms from the microphone "
                            "opening")
        if max(abs(r) for r in residuals) > BOUNDARY_MS:
            problems.append(f"{role}: boundary residuals {residuals} ms")
    assert not problems, problems
