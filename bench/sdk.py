"""Benchmark of the browser SDK's cost in the page (issue 18). Prints, in one run:

1. CPU: one headless Chromium (Debian's, as the browser tests run it) plays its fake
   microphone through a WebRTC call looped back inside one page (two RTCPeerConnections), so
   the page holds what a real call page holds: a local microphone track and a remote
   receiver. The same page runs ``--seconds`` without the SDK, then with it (one local and one
   remote participant, ``tap.network``) at each sampling period (20 ms, the default, and 50
   ms). CPU comes from the DevTools protocol's ``Performance.getMetrics``: ``ThreadTime`` (the
   page's main thread, where the SDK's timers, sampling and JSON run) and ``ProcessTime`` (the
   whole renderer, WebRTC and WebAudio threads included), as a share of one core over the
   window; the SDK's cost is the difference from the run without it (the noise of that
   difference is seen by comparing the two periods).
2. Bytes: what the SDK sent per minute of session, counted by the bench's stand-in ingest
   (an aiohttp WebSocket that answers ``auth``, ``clock`` and acks every message 202, as
   ``/v1/stream`` does) as WebSocket payload bytes, plus the messages per minute (each adds
   2-8 bytes of WebSocket framing and its TCP/TLS overhead).

Usage: ``.venv/bin/python bench/sdk.py [--seconds 30]``; Chromium must be installed
(``make system-deps``).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import WSMsgType, web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from cdp import Chromium, Tab, chromium_binary  # noqa: E402  (the browser tests' driver)

SDK = ROOT / "clients" / "js" / "rapport.js"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SDK bench</title></head>
<body data-state="loading"><script type="module">
import { attach } from "/sdk/rapport.js";
const params = new URLSearchParams(location.search);
try {
  const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
  const [track] = mic.getAudioTracks();
  const sender = new RTCPeerConnection();
  const receiver = new RTCPeerConnection();
  sender.onicecandidate = (e) => e.candidate && receiver.addIceCandidate(e.candidate);
  receiver.onicecandidate = (e) => e.candidate && sender.addIceCandidate(e.candidate);
  sender.addTrack(track, mic);
  const arrived = new Promise((resolve) => { receiver.ontrack = resolve; });
  await sender.setLocalDescription(await sender.createOffer());
  await receiver.setRemoteDescription(sender.localDescription);
  await receiver.setLocalDescription(await receiver.createAnswer());
  await sender.setRemoteDescription(receiver.localDescription);
  const event = await arrived;
  const audio = new Audio();
  audio.srcObject = event.streams[0];
  audio.play().catch(() => {});
  if (params.get("sdk") === "1") {
    const tap = attach({ endpoint: location.origin, token: "bench", session: "bench-1",
      clinic: "c1", sampleMs: Number(params.get("sampleMs")) });
    tap.local(track, { participant: "t1", role: "therapist" });
    tap.remote(event.receiver, { participant: "c1", role: "client" });
    tap.network(receiver);
    window.tap = tap;
  }
  document.body.dataset.state = "running";
} catch (error) {
  document.body.dataset.state = `error: ${error}`;
}
</script></body></html>
"""


class Ingest:
    """Stand-in for ``/v1/stream``: auth, clock and a 202 ack per message; counts bytes."""

    def __init__(self) -> None:
        self.bytes = 0
        self.messages = 0
        self.events: dict[str, int] = {}

    def reset(self) -> None:
        self.bytes = self.messages = 0
        self.events = {}

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        number = 0
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                break
            value = orjson.loads(message.data)
            if isinstance(value, dict) and value.get("type") == "auth":
                await ws.send_str('{"type":"auth","ok":true}')
            elif isinstance(value, dict) and value.get("type") == "clock":
                await ws.send_str(orjson.dumps({**value, "server_ms": int(time.time() * 1000)})
                                  .decode())
            else:
                self.bytes += len(message.data.encode())
                self.messages += 1
                for event in value:
                    self.events[event["type"]] = self.events.get(event["type"], 0) + 1
                await ws.send_str(orjson.dumps({"type": "ack", "message": number,
                                                "status": 202, "accepted": len(value)}).decode())
                number += 1
        return ws


class FakeMicChromium(Chromium):
    """cdp.py's headless Chromium with the fake microphone (its beep) and autoplay allowed."""

    def __init__(self, binary: str, profile: Path) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        self._log = open(profile / "chromium.log", "ab")  # noqa: SIM115
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--use-fake-ui-for-media-stream",
                 "--use-fake-device-for-media-stream", "--allow-loopback-in-peer-connection",
                 "--autoplay-policy=no-user-gesture-required"]
        self.process = subprocess.Popen(
            [binary, *flags, f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "about:blank"],
            stdout=self._log, stderr=self._log, stdin=subprocess.DEVNULL,
            start_new_session=True)
        self._profile = profile
        self._http = None


async def metrics(tab: Tab) -> dict[str, float]:
    answer = await tab.call("Performance.getMetrics")
    return {m["name"]: float(m["value"]) for m in answer["metrics"]}


async def measure(tab: Tab, url: str, seconds: float, ingest: Ingest) -> dict[str, Any]:
    await tab.navigate(url)
    await tab.wait_for("document.body.dataset.state !== 'loading'", 30)
    state = await tab.evaluate("document.body.dataset.state")
    if state != "running":
        raise RuntimeError(f"bench page: {state}")
    await asyncio.sleep(3)  # connected, clock measured, first batches out
    ingest.reset()
    before, began = await metrics(tab), time.monotonic()
    await asyncio.sleep(seconds)
    after, wall = await metrics(tab), time.monotonic() - began
    sent = ingest.bytes
    result = {"main": (after["ThreadTime"] - before["ThreadTime"]) / wall,
              "process": (after["ProcessTime"] - before["ProcessTime"]) / wall,
              "bytes_per_min": sent / wall * 60, "messages_per_min": ingest.messages / wall * 60,
              "events": dict(ingest.events), "wall": wall}
    await tab.navigate("about:blank")
    return result


async def main(seconds: float) -> int:
    binary = chromium_binary()
    if binary is None:
        print("bench/sdk.py: Chromium not found (make system-deps)", file=sys.stderr)
        return 2
    ingest = Ingest()
    app = web.Application()
    app.router.add_get("/bench.html", lambda _: web.Response(text=PAGE, content_type="text/html"))
    app.router.add_get("/sdk/rapport.js", lambda _: web.Response(
        body=SDK.read_bytes(), content_type="text/javascript"))
    app.router.add_get("/v1/stream", ingest.stream)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}/bench.html"
    profile = Path(tempfile.mkdtemp(prefix="rapport-bench-sdk-"))  # fresh: no stale port file
    browser = FakeMicChromium(binary, profile)
    try:
        tab = await browser.tab()
        await tab.call("Performance.enable", timeUnit="threadTicks")
        runs = [("without the SDK", f"{base}?sdk=0", None)]
        runs += [(f"SDK, {ms} ms sampling", f"{base}?sdk=1&sampleMs={ms}", ms) for ms in (20, 50)]
        results = []
        for name, url, ms in runs:
            result = await measure(tab, url, seconds, ingest)
            results.append((name, ms, result))
            print(f"{name:>22}: main thread {result['main']:.2%} of a core, renderer "
                  f"{result['process']:.2%}"
                  + (f"; sent {result['bytes_per_min'] / 1024:.1f} KiB/min in "
                     f"{result['messages_per_min']:.0f} messages/min {result['events']}"
                     if ms else ""), flush=True)
        base_main, base_process = results[0][2]["main"], results[0][2]["process"]
        print(f"window {seconds:.0f} s per run, one local + one remote participant, "
              f"network every 5 s; Chromium {binary}")
        for _name, ms, result in results[1:]:
            print(f"SDK cost at {ms} ms sampling: main thread "
                  f"{result['main'] - base_main:+.2%} of a core, renderer "
                  f"{result['process'] - base_process:+.2%}; "
                  f"{result['bytes_per_min'] / 1024:.1f} KiB/min sent "
                  f"({result['bytes_per_min'] / 60 * 8 / 1000:.1f} kbit/s)")
        await tab.close()
    finally:
        await browser.close()
        await runner.cleanup()
        shutil.rmtree(profile, ignore_errors=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0,
                        help="measurement window per run (default: %(default)s)")
    sys.exit(asyncio.run(main(parser.parse_args().seconds)))
