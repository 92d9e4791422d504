"""The comparison for bench/pipeline.py: the usual Faust pattern, one table update per event.

An agent iterates ``rapport.events`` event by event, decodes the JSON (Faust's json codec),
and updates a changelog-backed table once per event (a per-session event count). Same broker,
same partitions and the same consumer fetch wait as Rapport's worker (streams/kafka.py), so
the difference measured is the processing pattern only. Serves ``/metrics`` (events consumed).

Run by bench/pipeline.py: ``python bench/naive_agent.py BOOTSTRAP PARTITIONS WEB_PORT``.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import faust  # noqa: E402
from prometheus_client import Counter, generate_latest  # noqa: E402

from streams import kafka  # noqa: E402

APP_ID = "bench-naive"
CONSUMED = Counter("rapport_events_consumed_total", "events processed by the naive agent")


class _App(faust.App):
    def _new_transport(self) -> Any:
        return kafka.Transport(self.conf.broker_consumer, self)


def main() -> None:
    bootstrap, partitions, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    kafka.FETCH_MAX_WAIT_MS = 10
    data = tempfile.TemporaryDirectory(prefix="bench-naive-")
    app = _App(APP_ID, broker=f"kafka://{bootstrap}", store="memory://", datadir=data.name,
               topic_partitions=partitions, topic_allow_declare=False,
               topic_disable_leader=True, consumer_auto_offset_reset="earliest",
               web_port=port, web_bind="127.0.0.1", web_host="127.0.0.1")
    events = app.topic("rapport.events", key_type=bytes, value_serializer="json",
                       key_serializer="raw", partitions=partitions)
    counts = app.Table("counts", default=int, partitions=partitions)

    @app.agent(events)
    async def count(stream: Any) -> None:
        async for event in stream.events():
            value = event.value
            session = value.get("session_id", "") if isinstance(value, dict) else ""
            counts[session] += 1
            CONSUMED.inc()

    @app.page("/metrics")
    async def metrics(web: Any, _request: Any) -> Any:
        return web.bytes(generate_latest(), content_type="text/plain")

    worker = faust.Worker(app, loglevel=logging.WARNING, quiet=True, override_logging=False,
                          redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    finally:
        data.cleanup()


if __name__ == "__main__":
    main()
