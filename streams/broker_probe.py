"""How Rapport's Kafka clients reach the broker: broker addresses in every form users pass,
and the readiness probe every long-running process serves on ``/readyz``.

A Kafka client adapter, like the rest of streams/, but without Faust: the ingest and report
services import it too, and pay only for aiokafka.
"""

from __future__ import annotations

import asyncio

from aiokafka.client import AIOKafkaClient

from streams.kafka_security import KafkaSecurity


def _addresses(broker: str) -> list[str]:
    """``host:port`` items of a broker address in any of the forms users pass: Faust's
    ``kafka://h:p;kafka://h2:p``, a bootstrap list ``h:p,h2:p`` (as ``rapport kafka``
    prints it), or ``kafka://h:p,h2:p``."""
    parts = (part.strip() for part in broker.replace(";", ",").split(","))
    return [part.split("://", 1)[-1] for part in parts if part]


def bootstrap_servers(broker: str) -> str:
    """Kafka clients' bootstrap list ``h:p,h2:p`` from any broker address form."""
    return ",".join(_addresses(broker))


def faust_broker(broker: str) -> str:
    """Faust's broker URL list ``kafka://h:p;kafka://h2:p`` from any broker address form
    (Faust reads ``kafka://h:p,h2:p`` as one host named ``h:p,h2``)."""
    return ";".join(f"kafka://{address}" for address in _addresses(broker))


class BrokerProbe:
    """Whether the broker answers a metadata request (readiness), with a short timeout."""

    def __init__(self, broker: str, security: KafkaSecurity | None = None) -> None:
        self._bootstrap = bootstrap_servers(broker)
        self._security = security or KafkaSecurity()
        self._client: AIOKafkaClient | None = None

    async def check(self) -> str | None:
        try:
            if self._client is None:
                self._client = AIOKafkaClient(bootstrap_servers=self._bootstrap,
                                              request_timeout_ms=2000,
                                              **self._security.client_kwargs())
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
