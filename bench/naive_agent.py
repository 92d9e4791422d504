"""The comparison for bench/pipeline.py: the usual Faust pattern, one table update per event.

An agent iterates ``rapport.events`` record by record, decodes each event in it (one JSON
object per line: one, or several when records carry a session's events of one moment) and
updates a changelog-backed table once per event (a per-session event count). Same broker,
same partitions, the same consumer fetch wait (``--fetch-max-wait-ms``: bench/brokers.py gives
the worker's on each broker) and the same fix of Faust's fetch loop for a
full stream buffer as Rapport's worker (streams/kafka.py, points 1 and 7; without the fix
this agent stalls a second whenever its buffer fills), so the difference measured is the
processing pattern. Messages reach it the stock Faust way (Rapport's worker delivers its
input inline, streams/kafka.py point 3, part of what is measured). Serves ``/metrics``
(events consumed).

With ``--floor`` it instead measures Faust's own floor: an agent that only
takes micro-batches (``take_events``) of records and counts them, with no decoding and no state.

Run by bench/pipeline.py: ``python bench/naive_agent.py BOOTSTRAP PARTITIONS --web-port PORT
[--fetch-max-wait-ms MS] [--floor]``.
"""

from __future__ import annotations

import argparse
import json
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

CONSUMED = Counter("rapport_events_consumed_total", "events processed by the naive agent")


class _App(faust.App):
    transport_hooks: kafka.TransportHooks

    def _new_transport(self) -> Any:
        return kafka.Transport(self.conf.broker_consumer, self)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bootstrap")
    parser.add_argument("partitions", type=int)
    parser.add_argument("--web-port", type=int, required=True)
    parser.add_argument("--fetch-max-wait-ms", type=int, default=10)
    parser.add_argument("--floor", action="store_true")
    args = parser.parse_args()
    bootstrap, partitions, port, floor = args.bootstrap, args.partitions, args.web_port, args.floor
    app_id = "bench-floor" if floor else "bench-naive"
    data = tempfile.TemporaryDirectory(prefix="bench-naive-")
    app = _App(app_id, broker=f"kafka://{bootstrap}", store="memory://", datadir=data.name,
               topic_partitions=partitions, topic_allow_declare=False,
               topic_disable_leader=True, consumer_auto_offset_reset="earliest",
               web_port=port, web_bind="127.0.0.1", web_host="127.0.0.1")
    app.transport_hooks = kafka.TransportHooks(
        fetch_max_wait_ms=args.fetch_max_wait_ms, unpaused_topics=frozenset({"rapport.events"}))
    events = app.topic("rapport.events", key_type=bytes, value_type=bytes,
                       value_serializer="raw", key_serializer="raw", partitions=partitions)
    counts = app.Table("counts", default=int, partitions=partitions)

    async def take(stream: Any) -> None:
        async for batch in stream.take_events(2000, within=0.05):
            CONSUMED.inc(len(batch))

    async def count(stream: Any) -> None:
        async for record in stream:
            for line in record.split(b"\n"):
                value = json.loads(line)
                session = value.get("session_id", "") if isinstance(value, dict) else ""
                counts[session] += 1
                CONSUMED.inc()

    app.agent(events, name="floor" if floor else "count")(take if floor else count)

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
