"""Two of Faust's public extension points, filled so the worker skips per-record work it has
no use for (issue 15 point 5; docs/streaming.md, "Performance").

Measured with py-spy on the worker process on real Kafka (bench/pipeline.py's phase 4, one
event per record), each as a share of the worker's samples:

- **Faust's Monitor** (``QuietMonitor``, the app's ``Monitor`` setting: "the Monitor class as
  the main sensor"). Faust always adds it, and every message, stream event, table access and
  produced record calls into it: counters by topic, stream and task, timestamps, latency
  deques, read only by Faust's own ``/stats`` web views, which the worker does not serve (its
  figures are Rapport's Prometheus metrics, streams/metrics.py): 3.5 %. The subclass keeps
  what runs once per commit, rebalance, assignment or second, and the end offsets the
  consumer tracks.
- **Decoding keys and values** (``RawBytes``, a topic's ``schema``). Rapport's topics carry
  bytes with the ``raw`` codec, which Faust's serializer registry still runs per record
  (codec lookup, ``want_bytes``, error wrapping): 2.6 %. ``RawBytes`` returns the record's
  key and value as they are, which is what the ``raw`` codec with ``bytes`` types yields
  (sending bytes already skips the codec in Faust).
"""

from __future__ import annotations

from typing import Any

import faust
from faust.sensors import Monitor


class QuietMonitor(Monitor):
    """Faust's :class:`~faust.sensors.Monitor` without per-record statistics."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any,
                            state: Any = None) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_table_get(self, table: Any, key: Any) -> None:
        return None

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        return None

    def on_table_del(self, table: Any, key: Any) -> None:
        return None

    def on_send_initiated(self, producer: Any, topic: str, message: Any, keysize: int,
                          valsize: int) -> None:
        return None

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        return None


class RawBytes(faust.Schema[bytes, bytes]):
    """A topic schema of bytes keys and values, passed through as they are (``None`` too)."""

    def __init__(self) -> None:
        super().__init__(key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw")

    def loads_key(self, app: Any, message: Any, *, loads: Any = None,
                  serializer: Any = None) -> Any:
        return message.key

    def loads_value(self, app: Any, message: Any, *, loads: Any = None,
                    serializer: Any = None) -> Any:
        return message.value
