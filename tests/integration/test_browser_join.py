"""The join page in a real browser: two headless Chromium processes stream labelled WAV files
as their microphones into ``rapport run --port P --sessions 0`` (ingest, embedded broker, a
worker, the report store), one as the therapist and one as the client, in levels mode (RFC 6464
levels from RTP headers) and in audio mode (decode, resample, the VAD). The test ends the
session over the API and reads the final report and the speech timeline (``ipu`` items) back
from the report API with the job's admin token:

- talk time per role is within 3 % of the WAVs' truth (the clips' labels);
- every speech segment boundary (start and end of each inter-pausal unit) is within 60 ms of
  the truth. Where a WAV starts on the session clock is not observable to the millisecond (the
  fake microphone starts at ``getUserMedia``; the session clock is the ingest's receive clock),
  so each participant gets one constant offset, the median of its boundary differences; that
  offset must itself lie within ``MAX_START_ERROR_MS`` of the moment the page opened the
  microphone (``document.body.dataset.microphoneMs``, read over the DevTools protocol).

Audio mode runs twice: with Rapport's own VAD (``RAPPORT_VAD_BACKEND=rapport``), held to the
bounds above, and with the default backend (``auto``: the Silero model where installed), held
to 15 % and 150 ms (see ``BOUNDS``): the clips' labels end each unit where its tail falls
40 dB under the talker's peak, the convention Rapport's own VAD was tuned to; the Silero
backend, tuned to human-labelled speech (issue 17), starts units up to about 100 ms before
those labels and ends them up to about 120 ms after (measured 2026-12-04, the model alone:
talk time +10.5 % and +5.9 %, residuals within 112 ms; 2026-12-05, fused with band evidence:
+10.5 % and +4.6 %, within 122 ms; that evening, the two-branch default: +12.6 % and +3.6 %,
within 114 ms).

Chromium (Debian's ``chromium``) runs as the real binary ``/usr/lib/chromium/chromium`` (the
``/usr/bin/chromium`` wrapper adds flags), one process group per browser (headless refuses two
URLs on one command line; child processes outlive the parent briefly, so the group is waited
for). Each WAV ends with silence longer than the test: at EOF Chromium's fake device repeats
its last chunk. Skipped when Chromium is missing, except with ``CI=true`` (a failure there).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import soundfile as sf
import soxr
from harness import ROOT, free_port

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/lib/chromium/chromium")
AUDIO = ROOT / "tests" / "data" / "audio"
RATE = 48_000
LEAD_MS = 1_500  # silence before the first clip: the microphone opens after negotiation
TAIL_S = 180  # silence after the last clip, longer than the test
TALK_TOLERANCE = 0.03
BOUNDARY_MS = 60
# (talk time tolerance, boundary ms) per VAD backend of the job (module docstring).
BOUNDS = {"rapport": (TALK_TOLERANCE, BOUNDARY_MS), "auto": (0.15, 150)}
# Where a WAV starts on the session clock (the ingest's receive clock, METRICS.md §1) trails
# the page's microphone opening by Chromium's capture-to-send latency plus transit: 30-80 ms
# here usually, once 394 ms for one browser in a loaded CI run (278 ms once locally) with
# every boundary still within 10 ms of the others. That latency is when the ingest hears the
# audio, so by definition where it lies; the bound catches gross misplacement (a lost or
# doubled second, a grid started at the wrong packet), not Chromium's buffering.
MAX_START_ERROR_MS = 500

# Each role's WAV, as a conversation taking turns: (clip, gain dB) or (None, silence ms).
# m_gb_slow_quiet is played 10 dB up (at -12 dB, f_scot_mid's level): at its own -22 dB its
# RFC 6464 level dips under the engine's level_voiced_dbov (-50 dBov) inside words, and
# levels mode splits its units (a limit of a level threshold on a very quiet microphone, which
# tests/unit and bench/vad.py cover; this test is about the browser path).
SCRIPT: dict[str, list[tuple[str | None, float]]] = {
    "therapist": [("f_us_fast_loud", 0.0), (None, 7_000), ("f_scot_mid", 0.0)],
    "client": [(None, 6_300), ("m_gb_slow_quiet", 10.0)],
}

if not CHROMIUM.exists():
    if os.environ.get("CI") == "true":
        pytest.fail(f"{CHROMIUM} missing (apt-get install -y chromium); required with CI=true",
                    pytrace=False)
    pytest.skip(f"{CHROMIUM} missing: apt-get install -y chromium", allow_module_level=True)


@dataclass(frozen=True)
class Wav:
    path: Path
    speech_ms: list[tuple[int, int]]  # truth, ms from the WAV's start

    @property
    def talk_ms(self) -> int:
        return sum(end - start for start, end in self.speech_ms)

    @property
    def end_ms(self) -> int:
        return self.speech_ms[-1][1]


def build_wav(parts: list[tuple[str | None, float]], path: Path) -> Wav:
    """Concatenate labelled clips (16 kHz) and silences into a 48 kHz mono s16 WAV."""
    pieces = [np.zeros(16 * LEAD_MS, dtype=np.float32)]
    at, truth = LEAD_MS, []
    for name, value in parts:
        if name is None:
            pieces.append(np.zeros(16 * int(value), dtype=np.float32))
            at += int(value)
            continue
        audio, rate = sf.read(AUDIO / f"{name}.flac", dtype="float32")
        assert rate == 16_000
        meta = json.loads((AUDIO / f"{name}.json").read_text())
        truth += [(at + start, at + end) for start, end in meta["speech_ms"]]
        pieces.append(audio * np.float32(10 ** (value / 20)))
        at += len(audio) // 16
    pieces.append(np.zeros(16_000 * TAIL_S, dtype=np.float32))
    sf.write(path, soxr.resample(np.concatenate(pieces), 16_000, RATE), RATE, subtype="PCM_16")
    return Wav(path, truth)


class Job:
    """``rapport run --port P --sessions 0``: its URL, admin token and an ingest token."""

    def __init__(self, directory: Path, vad_backend: str = "rapport") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # librosa's numba code is compiled once into a cache that outlives the test (build/
        # is git-ignored): compiling it cold takes about 12 s of CPU next to live streams.
        self.env = {**os.environ, "RAPPORT_DATA_DIR": str(directory / "data"),
                    "RAPPORT_DB_URL": f"sqlite:///{directory / 'reports.db'}",
                    "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR",
                                                      str(ROOT / "build" / "numba-cache")),
                    "RAPPORT_VAD_BACKEND": vad_backend}
        self.vad_backend = vad_backend
        self.log = directory / "run.log"
        self.dead_letters = directory / "dead-letters.jsonl"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "run", "--port", str(self.port),
                 "--sessions", "0", "--end-grace-ms", "0",
                 "--reports", str(directory / "reports.jsonl"),
                 "--dead-letters", str(self.dead_letters)],
                cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                start_new_session=True)
        self.admin = self._admin_token(90)
        deadline = time.monotonic() + 90
        while self.request("GET", "/readyz", self.admin)[0] != 200:  # the worker is up
            assert time.monotonic() < deadline and self.process.poll() is None, self.tail()
            time.sleep(0.5)
        created = subprocess.run(
            [sys.executable, "-m", "services.cli", "tokens", "create", "--clinic", "c1",
             "--scope", "ingest"], cwd=ROOT, env=self.env, capture_output=True, text=True,
            check=True)
        self.ingest = created.stdout.strip().splitlines()[-1]

    def _admin_token(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"admin token: (\S+)", self.log.read_text(errors="replace"))
            if found:
                return found.group(1)
            assert self.process.poll() is None, self.tail()
            time.sleep(0.3)
        raise AssertionError(f"rapport run did not start\n{self.tail()}")

    def tail(self) -> str:
        """The log's end, then the dead letters' reasons (the first 10): an intermittent
        failure seen twice (stop 36, and CI on 2026-12-06) dead-lettered 22 events."""
        text = "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])
        if self.dead_letters.exists():
            lines = self.dead_letters.read_text(errors="replace").splitlines()
            text += f"\n{len(lines)} dead letters; the first:\n" + "\n".join(
                line[:400] for line in lines[:10])
        return text

    def request(self, method: str, path: str, token: str) -> tuple[int, Any]:
        request = urllib.request.Request(self.url + path, method=method,
                                         headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                body = answer.read()
                return answer.status, json.loads(body) if body else None
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")
        except (urllib.error.URLError, ConnectionError):
            return 0, None

    def stop(self) -> None:
        stop_group(self.process, 30)


def stop_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM the process group, wait until it is empty (SIGKILL after ``timeout``)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while True:
        process.poll()
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
        time.sleep(0.1)


class Browser:
    """One headless Chromium with a WAV as its microphone, on one URL, in its own group."""

    def __init__(self, url: str, wav: Path, directory: Path) -> None:
        self.profile = directory
        directory.mkdir()
        self.log = directory / "chromium.log"
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={directory}",
                 "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                 f"--use-file-for-fake-audio-capture={wav}%noloop",
                 "--allow-loopback-in-peer-connection", "--remote-debugging-port=0"]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen([str(CHROMIUM), *flags, url], stdout=out,
                                            stderr=out, stdin=subprocess.DEVNULL,
                                            start_new_session=True)

    async def dataset(self, client: aiohttp.ClientSession) -> dict[str, str]:
        """The page's ``document.body.dataset`` over the DevTools protocol ({} until up)."""
        port_file = self.profile / "DevToolsActivePort"
        if not port_file.exists() or not port_file.read_text().strip():
            return {}
        port = port_file.read_text().split()[0]
        try:
            async with client.get(f"http://127.0.0.1:{port}/json") as answer:
                targets = await answer.json(content_type=None)
            page = next(t for t in targets if t["type"] == "page" and "/join" in t["url"])
            async with client.ws_connect(page["webSocketDebuggerUrl"]) as socket:
                await socket.send_json({"id": 1, "method": "Runtime.evaluate", "params": {
                    "expression": "JSON.stringify(document.body.dataset)",
                    "returnByValue": True}})
                reply = await socket.receive_json(timeout=5)
        except (aiohttp.ClientError, StopIteration, asyncio.TimeoutError, ValueError):
            return {}
        value = reply.get("result", {}).get("result", {}).get("value")
        return dict(json.loads(value)) if value else {}

    def stop(self) -> None:
        stop_group(self.process, 10)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Job]]:
    """The job with Rapport's own VAD or the default backend in audio mode, started on first
    use and shared by this module's tests (one job per backend, not per test: each start and
    stop costs the serial tier about 10 s)."""
    running: dict[str, Job] = {}

    def job(vad_backend: str) -> Job:
        if vad_backend not in running:
            running[vad_backend] = Job(tmp_path_factory.mktemp("job"), vad_backend)
        return running[vad_backend]

    try:
        yield job
    finally:
        for started in running.values():
            started.stop()


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Wav]:
    directory = tmp_path_factory.mktemp("wav")
    return {role: build_wav(parts, directory / f"{role}.wav") for role, parts in SCRIPT.items()}


async def wait_streaming(browsers: dict[str, Browser], timeout: float) -> dict[str, int]:
    """Wait until every page streams; return when each opened its microphone (epoch ms)."""
    deadline = time.monotonic() + timeout
    opened: dict[str, int] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client:
        while len(opened) < len(browsers):
            for role, browser in browsers.items():
                data = await browser.dataset(client)
                assert not data.get("state", "").startswith("error"), (role, data)
                if data.get("state") == "streaming" and "microphoneMs" in data:
                    opened[role] = int(data["microphoneMs"])
            assert time.monotonic() < deadline, f"pages not streaming: {opened}"
            await asyncio.sleep(0.3)
    return opened


def ipus(timeline: list[dict[str, Any]], role: str) -> list[tuple[int, int]]:
    return sorted((int(i["start_ms"]), int(i["end_ms"])) for i in timeline
                  if i["kind"] == "ipu" and i["role"] == role)


# Levels mode runs no VAD: once, with either job; audio mode with each VAD backend.
@pytest.mark.parametrize(("mode", "vad_backend"), [("levels", "rapport"), ("audio", "rapport"),
                                                   ("audio", "auto")])
def test_two_browsers_stream_their_microphones_into_the_report(
        mode: str, vad_backend: str, jobs: Callable[[str], Job], wavs: dict[str, Wav],
        tmp_path: Path) -> None:
    job = jobs(vad_backend)
    talk_tolerance, boundary_ms = BOUNDS[job.vad_backend] if mode == "audio" else BOUNDS[
        "rapport"]
    session = f"browser-{mode}-{uuid.uuid4().hex[:8]}"
    browsers: dict[str, Browser] = {}
    try:
        for role, wav in wavs.items():
            url = (f"{job.url}/join?session={session}&participant={role}-1&role={role}"
                   f"&clinic=c1&mode={mode}&token={job.ingest}")
            browsers[role] = Browser(url, wav.path, tmp_path / role)
        opened = asyncio.run(wait_streaming(browsers, 60))
        finish = max(opened[r] + wavs[r].end_ms for r in wavs) + 2_000
        time.sleep(max(finish - time.time() * 1000, 0) / 1000)
        status, _ = job.request("POST", f"/v1/sessions/{session}/end", job.ingest)
        assert status == 204
    finally:
        for browser in browsers.values():
            browser.stop()
    deadline = time.monotonic() + 90
    # An admin names the session's clinic (a session is its clinic and its id; issue 16).
    while (answer := job.request("GET", f"/v1/sessions/{session}/report?clinic=c1",
                                 job.admin))[0] != 200:
        assert answer[0] == 404, answer
        assert time.monotonic() < deadline, f"no report\n{job.tail()}"
        time.sleep(0.5)
    report = answer[1]["report"]
    status, timeline = job.request(
        "GET", f"/v1/sessions/{session}/timeline?kind=ipu&limit=1000&clinic=c1", job.admin)
    assert status == 200, timeline
    problems = []
    for role, wav in wavs.items():
        talk_ms = report["roles"][role]["talk_s"] * 1000
        error = talk_ms / wav.talk_ms - 1
        found = ipus(timeline["items"], role)
        print(f"{mode} ({job.vad_backend}) {role}: talk {talk_ms:.0f} ms vs truth {wav.talk_ms} ms "
              f"({error:+.1%}); {len(found)} segments vs {len(wav.speech_ms)}")
        if abs(error) > talk_tolerance:
            problems.append(f"{role}: talk time {error:+.1%} off")
        if len(found) != len(wav.speech_ms):
            problems.append(f"{role}: segments {found} vs truth {wav.speech_ms}")
            continue
        differences = [got - want for pair, truth in zip(found, wav.speech_ms, strict=True)
                       for got, want in zip(pair, truth, strict=True)]
        offset = float(np.median(differences))
        residuals = [round(d - offset) for d in differences]
        print(f"{mode} {role}: WAV start {offset - opened[role]:+.0f} ms from the microphone "
              f"opening; boundary residuals (ms) {residuals}")
        if abs(offset - opened[role]) > MAX_START_ERROR_MS:
            problems.append(f"{role}: WAV placed {offset - opened[role]:+.0f} ms from the "
                            "microphone opening")
        if max(abs(r) for r in residuals) > boundary_ms:
            problems.append(f"{role}: boundary residuals {residuals} ms")
    # The job's log and dead letters say what a bad run dead-lettered or dropped (an
    # intermittent failure seen twice, stop 36 and CI on 2026-12-06: 22 dead letters, the
    # first ~11 s of both participants lost, the therapist's talk time -49.8 %; reproduced
    # by holding the ingest's event loop, and fixed for that cause on 2026-12-07:
    # tests/component/test_ingest_webrtc.py, "held up").
    assert not problems, f"{problems}\n{job.tail()}"
