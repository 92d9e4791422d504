"""Issue 19 in a real browser (headless Chromium over the DevTools protocol, cdp.py): the
clinic's display labels and the numbers-in-context bands render on a session's report and on
the therapist's trend page, and the report prints cleanly: ``Page.printToPDF`` gives a valid
PDF on A4 and on Letter paper, and with print media emulated the navigation, forms and
sign-out are not displayed while the charts are, sections start on a new page, and the page
fits 170 mm without horizontal overflow (screenshot saved under ``tmp_path``).

The report app runs in-process on a free port over a SQLite store holding six therapists'
sessions (at least five are needed for the clinic band). Skipped when Chromium is missing,
except with ``CI=true``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cdp import Chromium, Tab, chromium_binary, kill_group
from harness import free_port
from reportkit import KEY, day_ms, report_record

from services.reports import create_app
from services.store import ReportStore

pytestmark = pytest.mark.slow

# Paper sizes in inches (CDP) and the MediaBox Chromium writes, in points (1/72 in).
PAPERS = {"a4": (8.27, 11.69), "letter": (8.5, 11.0)}
PRINT_WIDTH_PX = 643  # 170 mm at 96 px per inch: the widest printable line we allow

VISIBLE = ("(sel) => Array.from(document.querySelectorAll(sel)).filter(e => { "
           "const r = e.getBoundingClientRect(); return getComputedStyle(e).display !== "
           "'none' && (r.width > 0 || r.height > 0); }).length")


@pytest.fixture
def chromium() -> str:
    found = chromium_binary()
    if found is None:
        reason = "Chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it")
        pytest.skip(reason)
    return found


def _fill(store: ReportStore) -> str:
    """Six therapists, three sessions each, in clinic c1; t1 labelled "Dr. Lee"."""
    for k in range(1, 7):
        for i in range(3):
            store.save_report(report_record(
                f"s{k}-{i}", "c1", therapist=f"t{k}", client=f"p{k}",
                start_ms=day_ms(f"2026-03-0{1 + i}", 10 + k),
                therapist_share=round(0.3 + 0.05 * k + 0.01 * i, 4)))
    store.set_label("c1", "t1", "therapist", "Dr. Lee", "test")
    token, _ = store.create_token("c1", "reports")
    return token


async def _count(tab: Tab, selector: str) -> int:
    return int(await tab.evaluate(f"({VISIBLE})({selector!r})"))


async def _pdf(tab: Tab, paper: str, path: Path) -> bytes:
    width, height = PAPERS[paper]
    result = await tab.call("Page.printToPDF", timeout=60, paperWidth=width,
                            paperHeight=height, printBackground=True, preferCSSPageSize=False)
    data = base64.b64decode(result["data"])
    path.write_bytes(data)
    return data


async def scenario(base: str, token: str, t1: str, out: Path, tab: Tab) -> dict[str, Any]:
    await tab.call("Network.enable")
    await tab.call("Network.setExtraHTTPHeaders",
                   headers={"Authorization": f"Bearer {token}"})
    found: dict[str, Any] = {}

    await tab.navigate(f"{base}/sessions/s1-2?clinic=c1")
    found["report_label"] = await tab.evaluate(
        "document.querySelector('main a.therapist').textContent")
    found["report_bands"] = await _count(tab, "#context svg.context-bar rect.band")
    found["report_medians"] = await _count(tab, "#context svg.context-bar line.own-median")
    found["report_values"] = await _count(tab, "#context svg.context-bar circle.value")
    await tab.screenshot(out / "report-screen.png")

    # Print: a valid PDF on both papers, of the sizes asked for.
    for paper in PAPERS:
        data = await _pdf(tab, paper, out / f"report-{paper}.pdf")
        boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", data)
        found[f"pdf_{paper}"] = {"header": data[:5], "eof": b"%%EOF" in data[-64:],
                                 "boxes": {(round(float(w)), round(float(h)))
                                           for w, h in boxes},
                                 "pages": len(boxes)}

    # Print media emulated: what the printed page shows.
    await tab.call("Emulation.setEmulatedMedia", media="print")
    await tab.call("Emulation.setDeviceMetricsOverride", width=PRINT_WIDTH_PX, height=1000,
                   deviceScaleFactor=1, mobile=False)
    await tab.navigate(f"{base}/sessions/s1-2?clinic=c1")
    found["print_nav"] = await _count(tab, "header, header a, nav")
    found["print_forms"] = await _count(tab, "form, button")
    found["print_charts"] = await _count(tab, "svg.timeline, svg.share, svg.context-bar")
    found["print_breaks"] = await tab.evaluate(
        "Array.from(document.querySelectorAll('main h2')).map(h => "
        "getComputedStyle(h).breakBefore)")
    found["print_overflow"] = await tab.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth")
    await tab.screenshot(out / "report-print.png")
    await tab.call("Emulation.setEmulatedMedia", media="")
    await tab.call("Emulation.clearDeviceMetricsOverride")

    await tab.navigate(f"{base}/therapists/{t1}")
    found["trend_label"] = await tab.evaluate("document.querySelector('main h1').textContent")
    found["trend_bands"] = await _count(tab, "#context svg.context-bar rect.band")
    await tab.screenshot(out / "trend-screen.png")
    return found


def _is_paper(boxes: set[tuple[int, int]], width_pt: float, height_pt: float) -> bool:
    """Every page is this paper size (A4 595.3 × 841.9 pt, Letter 612 × 792), to 2 pt."""
    return bool(boxes) and all(abs(w - width_pt) <= 2 and abs(h - height_pt) <= 2
                               for w, h in boxes)


def test_labels_bands_and_print_in_chromium(chromium: str, tmp_path: Path) -> None:
    out = tmp_path / "browser"
    out.mkdir()
    store = ReportStore(f"sqlite:///{tmp_path / 'reports.db'}", KEY)
    token = _fill(store)
    t1 = store.pseudonymize("t1")
    browser = Chromium(chromium, tmp_path / "profile", tmp_path / "chromium.log")
    port = free_port()

    async def run() -> dict[str, Any]:
        runner = web.AppRunner(create_app(store))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        tab = await browser.tab()
        try:
            return await scenario(f"http://127.0.0.1:{port}", token, t1, out, tab)
        finally:
            await tab.close()
            await browser.close()
            await runner.cleanup()

    try:
        found = asyncio.run(asyncio.wait_for(run(), 180))
    finally:
        if browser.process.poll() is None:
            kill_group(browser.process)
        store.close()

    # labels and bands on the report and trend pages
    assert found["report_label"] == "Dr. Lee"
    assert "Dr. Lee" in found["trend_label"]
    assert found["report_bands"] >= 10 and found["trend_bands"] >= 10, found
    assert found["report_medians"] >= 10 and found["report_values"] >= 10, found
    # valid PDFs of the right paper size
    assert found["pdf_a4"]["header"] == b"%PDF-" and found["pdf_a4"]["eof"]
    assert _is_paper(found["pdf_a4"]["boxes"], 595.3, 841.9), found["pdf_a4"]
    assert found["pdf_letter"]["header"] == b"%PDF-" and found["pdf_letter"]["eof"]
    assert _is_paper(found["pdf_letter"]["boxes"], 612, 792), found["pdf_letter"]
    # sections on their own pages: more than one page
    assert found["pdf_a4"]["pages"] > 3 and found["pdf_letter"]["pages"] > 3
    # the printed page: no navigation, forms or sign-out; charts kept; page breaks; fits
    assert found["print_nav"] == 0 and found["print_forms"] == 0, found
    assert found["print_charts"] >= 12, found
    assert found["print_breaks"].count("page") >= 5, found["print_breaks"]
    assert found["print_overflow"] <= 0, found
    shots = {p.name for p in out.glob("*.png")}
    assert shots == {"report-screen.png", "report-print.png", "trend-screen.png"}
    assert all((out / name).stat().st_size > 10_000 for name in shots)
