"""Helpers for the ingest component tests: a token table, an in-memory publisher and the
ingest app on aiohttp's test server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer

from services.ingest import IngestConfig, MemoryPublisher, create_app
from services.store.pseudonyms import Pseudonymizer
from services.store.tokens import TokenInfo

# The ingest pseudonymizes participant ids on entry (issue 16 finding 5) with this key here.
PSEUDONYM_KEY = b"ingest-component-tests-key"
HIDE = Pseudonymizer(PSEUDONYM_KEY)

INGEST_C1 = "rpt_ingest_c1"
INGEST_C2 = "rpt_ingest_c2"
REPORTS_C1 = "rpt_reports_c1"
ADMIN = "rpt_admin"


class Tokens:
    """A fixed token table with the store's verify_token interface."""

    def __init__(self) -> None:
        now = datetime.now(timezone.utc)
        self.table = {
            INGEST_C1: TokenInfo("aaa", "c1", "ingest", now, None),
            INGEST_C2: TokenInfo("bbb", "c2", "ingest", now, None),
            REPORTS_C1: TokenInfo("ccc", "c1", "reports", now, None),
            ADMIN: TokenInfo("ddd", "ops", "admin", now, None),
        }

    def verify_token(self, token: str) -> TokenInfo | None:
        return self.table.get(token)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def start(session: str = "s1", clinic: str = "c1") -> dict[str, Any]:
    return {"type": "session.start", "session_id": session, "ts_ms": 0, "clinic_id": clinic,
            "participants": [{"participant_id": "p1", "role": "therapist"},
                             {"participant_id": "p2", "role": "client"}]}


def activity(seq: int, session: str = "s1") -> dict[str, Any]:
    return {"type": "activity", "session_id": session, "participant_id": "p1", "seq": seq,
            "start_ms": seq * 1000, "frame_ms": 20, "voiced": "0011" * 10}


def values(records: list[Any]) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in records]


def hidden(events: Any) -> Any:
    """``events`` as the ingest publishes them: every participant id a pseudonym."""
    return HIDE.apply(events)


@asynccontextmanager
async def ingest_client(config: IngestConfig | None = None,
                        publisher: MemoryPublisher | None = None, *, warm: bool = False
                        ) -> AsyncIterator[tuple[TestClient[Any, Any], MemoryPublisher]]:
    sink = publisher or MemoryPublisher()
    app = create_app(sink, Tokens(), config, warm_vad=warm, pseudonymize=HIDE)
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, sink
    finally:
        await client.close()
