"""Headless Chromium driven over the DevTools protocol, for the browser tests (issue 5).

Runs Debian's real binary (``/usr/lib/chromium/chromium``; ``apt-get install chromium``; no
browser download) headless in its own process group with a throw-away profile and
``--remote-debugging-port=0``, reads the port it picked from ``DevToolsActivePort`` in the
profile, and speaks the protocol's JSON-RPC over a WebSocket with aiohttp: :class:`Tab` sends
commands (``Page.navigate``, ``Runtime.evaluate``, ``Page.captureScreenshot``, ...) and waits
for their answers. :meth:`Chromium.close` kills the whole group and waits for it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

BINARY = "/usr/lib/chromium/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1280,900")


def chromium_binary() -> str | None:
    """The real Chromium binary, or None when it is not installed."""
    if os.access(BINARY, os.X_OK):
        return BINARY
    found = shutil.which("chromium")
    return os.path.realpath(found) if found else None


class CdpError(RuntimeError):
    """A protocol command failed, or the page threw."""


class Tab:
    """One page target's DevTools session."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            data = orjson.loads(message.data)
            waiting = self._pending.pop(data.get("id", -1), None)
            if waiting is not None and not waiting.done():
                waiting.set_result(data)
            elif "method" in data:
                self.events.append(data)
        for waiting in self._pending.values():
            if not waiting.done():
                waiting.set_exception(CdpError("the DevTools connection closed"))

    async def call(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        """Send one command and return its result."""
        number = next(self._ids)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[number] = answer
        await self._ws.send_str(orjson.dumps({"id": number, "method": method,
                                              "params": params}).decode())
        data = await asyncio.wait_for(answer, timeout)
        if "error" in data:
            raise CdpError(f"{method}: {data['error']}")
        result: dict[str, Any] = data.get("result", {})
        return result

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the page (promises awaited)."""
        result = await self.call("Runtime.evaluate", expression=expression,
                                 returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 30, every: float = 0.1) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = await self.evaluate(expression)
            except CdpError:  # a navigation replaced the context meanwhile
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression!r} still false after {timeout} s")
            await asyncio.sleep(every)

    async def navigate(self, url: str, timeout: float = 30) -> None:
        """Load ``url`` and wait until the document is complete."""
        await self.call("Page.navigate", url=url)
        await self.wait_for(f"location.href === {orjson.dumps(url).decode()} && "
                            "document.readyState === 'complete'", timeout)

    async def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """A PNG of the page (the whole document when ``full_page``)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = await self.call("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"],
                                "height": min(size["height"], 12_000), "scale": 1})
        shot = await self.call("Page.captureScreenshot", timeout=60, **params)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()


class Chromium:
    """A headless Chromium process (its own process group) and its DevTools endpoint."""

    def __init__(self, binary: str, profile: Path, log: Path) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
             "about:blank"],
            stdout=self._log, stderr=self._log, stdin=subprocess.DEVNULL,
            start_new_session=True)
        self._profile = profile
        self._http: aiohttp.ClientSession | None = None

    async def port(self, timeout: float = 60) -> int:
        """The DevTools port, once Chromium has written it."""
        marker = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise CdpError(f"chromium exited with status {self.process.returncode}")
            lines = marker.read_text().splitlines() if marker.exists() else []
            if lines and lines[0].strip().isdigit():
                return int(lines[0])
            await asyncio.sleep(0.1)
        raise TimeoutError("chromium did not open its DevTools port")

    async def tab(self) -> Tab:
        """A DevTools session on the browser's page."""
        port = await self.port()
        self._http = self._http or aiohttp.ClientSession()
        deadline = time.monotonic() + 30
        while True:
            async with self._http.get(f"http://127.0.0.1:{port}/json/list") as answer:
                pages = [t for t in await answer.json() if t.get("type") == "page"]
            if pages or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        if not pages:
            raise CdpError("chromium has no page target")
        ws = await self._http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        tab = Tab(ws)
        await tab.call("Page.enable")
        await tab.call("Runtime.enable")
        return tab

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        kill_group(self.process)
        self._log.close()


def kill_group(process: subprocess.Popen[bytes], grace: float = 10,
               first: signal.Signals = signal.SIGTERM) -> None:
    """Signal ``process``'s whole group (``first``; SIGKILL to whatever is left after
    ``grace`` seconds) and wait for the process."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, first)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(30)
