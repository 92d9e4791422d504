"""How Rapport's Kafka clients reach the broker: the bootstrap list of a broker URL, and the
readiness probe every long-running process serves on ``/readyz``.

A Kafka client adapter, like the rest of streams/, but without Faust: the ingest and report
services import it too, and pay only for aiokafka.
"""

from __future__ import annotations

import asyncio

from aiokafka.client import AIOKafkaClient


def bootstrap_servers(broker: str) -> str:
    """aiokafka's bootstrap list from Faust's broker URL(s) (``kafka://h:p;kafka://h2:p``)."""
    return ",".join(url.split("://", 1)[-1] for url in broker.split(";"))


class BrokerProbe:
    """Whether the broker answers a metadata request (readiness), with a short timeout."""

    def __init__(self, broker: str) -> None:
        self._bootstrap = bootstrap_servers(broker)
        self._client: AIOKafkaClient | None = None

    async def check(self) -> str | None:
        try:
            if self._client is None:
                self._client = AIOKafkaClient(bootstrap_servers=self._bootstrap,
                                              request_timeout_ms=2000)
                await asyncio.wait_for(self._client.bootstrap(), 3)
            await asyncio.wait_for(self._client.fetch_all_metadata(), 3)
        except Exception as error:  # any failure means "not reachable now"
            if self._client is not None:
                await self._client.close()
                self._client = None
            return f"unreachable ({type(error).__name__})"
        return None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
