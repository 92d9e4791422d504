"""The retention purge on a schedule (issue 19, point 5): the reports service (``rapport
reports`` and ``rapport run --port``) purges every ``RAPPORT_PURGE_INTERVAL_S`` seconds
(default 3600), the first time right after it starts.

Each run calls :meth:`~services.store.ReportStore.purge` in a worker thread (it is a store
call like any other) with the token id ``service``, and logs one INFO line with the counts.
A failing run (database unavailable) is logged as a warning and retried at the next interval:
the service keeps answering, and the next run deletes what this one could not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from services.store import ReportStore, StoreError
from services.store.audit import SERVICE_TOKEN_ID
from services.store.retention import PurgeCounts

log = logging.getLogger(__name__)


def describe(purged: list[PurgeCounts]) -> str:
    """``clinic c1: 3 sessions, ...; clinic c2: ...`` or ``nothing older than retention``."""
    if not purged:
        return "nothing older than the retention periods"
    return "; ".join(
        f"clinic {c.clinic_id}: " + ", ".join(f"{n} {name.replace('_', ' ')}"
                                               for name, n in c.as_dict().items())
        for c in purged)


async def purge_once(store: ReportStore) -> list[PurgeCounts] | None:
    """One purge; None (logged) when the database failed."""
    try:
        purged = await asyncio.to_thread(store.purge, token_id=SERVICE_TOKEN_ID)
    except StoreError as error:
        log.warning("retention purge failed, retried in the next interval: %s", error)
        return None
    log.info("retention purge: %s", describe(purged))
    return purged


async def purge_forever(store: ReportStore, interval_s: float) -> None:
    while True:
        await purge_once(store)
        await asyncio.sleep(interval_s)


def add_purge_schedule(app: web.Application, store: ReportStore, interval_s: float) -> None:
    """Run the purge every ``interval_s`` seconds while ``app`` runs."""

    async def scheduled(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(purge_forever(store, interval_s), name="retention purge")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(scheduled)
