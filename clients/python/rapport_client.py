"""A small client for Rapport's ingest API, for server-side forwarders (issue 18; docs/sdk.md
"Python client"): bots on LiveKit, Janus or Zoom that forward ``voice`` or ``levels`` events
(METRICS.md §9) to ``POST /v1/events``.

One file, standard library only (Python 3.9+): copy it next to a bot, or import it from a
Rapport checkout; it needs none of the server's dependencies::

    from rapport_client import RapportClient

    with RapportClient("https://rapport.example.com", token) as client:
        client.send({"type": "session.start", ...})
        client.send([{"type": "voice", ...}, {"type": "voice", ...}])
    # leaving the block flushes and closes

Behaviour:

- **Batching**: :meth:`RapportClient.send` queues events; a background thread posts them as
  JSON arrays of at most ``max_batch_events`` (default and maximum 10,000, the ingest's limit
  per request) and ``max_batch_bytes`` (default 900 KiB, under the ingest's 1 MiB body), waiting
  at most ``linger_s`` for a batch to fill. Order is kept.
- **Retries**: connection errors, timeouts, ``408`` and ``5xx`` are retried with exponential
  backoff (``backoff_initial_s`` doubling to ``backoff_max_s``, with jitter; a ``Retry-After``
  is honoured up to ``backoff_max_s``), without limit until :meth:`close`'s deadline. A ``429``
  waits its ``Retry-After`` (a per-token limit; nothing of the request was accepted) and
  retries. Resending is harmless: the ingest treats repeats as at-least-once delivery (§9).
- **Rejections**: ``207``/``422`` (invalid events; the ingest keeps them in its dead-letter
  topic) are not retried: each is logged and listed in :attr:`RapportClient.rejections`.
  A ``413`` batch is split in two and retried; other ``4xx`` (``401``/``403``: a bad,
  revoked or foreign token) stop the client: the next :meth:`send`, :meth:`flush` or
  :meth:`close` raises :class:`RapportError` with the status.
- **Backpressure**: the queue holds at most ``max_queue_events`` (default 100,000). When it is
  full, :meth:`send` blocks until there is room, at most ``send_timeout_s`` (default None:
  wait as long as it takes), then raises :class:`QueueFull` without queuing any of that call's
  events. Use ``send_timeout_s=0`` to never block.
- :meth:`flush` waits until every queued event is delivered (or rejected);
  :meth:`close` flushes (at most ``timeout_s``), stops the thread and raises
  :class:`RapportError` naming how many events were not delivered.

The token is sent only in the ``Authorization`` header and never logged.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

MAX_EVENTS_PER_REQUEST = 10_000  # the ingest's limit (services/ingest/intake.py)
MAX_BODY_BYTES = 1024 * 1024  # the ingest's default body limit


class RapportError(Exception):
    """The ingest refused the client (``status``: 401, 403, …) or events were not delivered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class QueueFull(RapportError):
    """:meth:`RapportClient.send` found the queue full for ``send_timeout_s``."""


@dataclass(frozen=True)
class Rejection:
    """An event the ingest refused as invalid (kept in its dead-letter topic)."""

    event: Mapping[str, Any]
    field: str
    error: str


class RapportClient:
    """Batches, retries and backpressure for ``POST /v1/events`` (see the module docstring)."""

    def __init__(self, endpoint: str, token: str, *,
                 max_batch_events: int = MAX_EVENTS_PER_REQUEST,
                 max_batch_bytes: int = 900 * 1024, linger_s: float = 0.2,
                 max_queue_events: int = 100_000, send_timeout_s: float | None = None,
                 backoff_initial_s: float = 0.5, backoff_max_s: float = 15.0,
                 request_timeout_s: float = 30.0) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"endpoint: must be an http(s) URL, got {endpoint!r}")
        if not 1 <= max_batch_events <= MAX_EVENTS_PER_REQUEST:
            raise ValueError(f"max_batch_events: must be 1..{MAX_EVENTS_PER_REQUEST}")
        if not 1024 <= max_batch_bytes <= MAX_BODY_BYTES:
            raise ValueError(f"max_batch_bytes: must be 1024..{MAX_BODY_BYTES}")
        if max_queue_events < 1:
            raise ValueError("max_queue_events: must be at least 1")
        self._parts = parts
        self._path = (parts.path.rstrip("/") or "") + "/v1/events"
        self._headers = {"Authorization": f"Bearer {token}",
                         "Content-Type": "application/json"}
        self.max_batch_events = max_batch_events
        self.max_batch_bytes = max_batch_bytes
        self.linger_s = linger_s
        self.max_queue_events = max_queue_events
        self.send_timeout_s = send_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.request_timeout_s = request_timeout_s
        self.rejections: list[Rejection] = []
        self.delivered = 0  # events the ingest accepted
        self.requests = 0  # POSTs answered (any status)
        self._queue: deque[bytes] = deque()
        self._in_flight = 0  # events taken by the thread, not yet resolved
        self._lock = threading.Condition()
        self._closing = False
        self._flushing = 0  # callers waiting in flush(): send what there is at once
        self._abandon = False
        self._fatal: RapportError | None = None
        self._connection: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name="rapport-client", daemon=True)
        self._thread.start()

    # --- the caller's side -----------------------------------------------------------------

    def send(self, events: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> None:
        """Queue one event or several (all or none of them); blocks while the queue is full
        (see ``send_timeout_s``)."""
        items = [events] if isinstance(events, Mapping) else list(events)
        encoded = [json.dumps(e, separators=(",", ":")).encode() for e in items]
        if any(len(e) + 2 > self.max_batch_bytes for e in encoded):
            raise ValueError("events: one event is larger than max_batch_bytes")
        if len(encoded) > self.max_queue_events:
            raise ValueError("events: more in one call than max_queue_events")
        deadline = None if self.send_timeout_s is None \
            else time.monotonic() + self.send_timeout_s
        with self._lock:
            while True:
                self._check()
                if self._closing:
                    raise RapportError("the client is closed")
                if len(self._queue) + len(encoded) <= self.max_queue_events:
                    break
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise QueueFull(f"{len(self._queue)} events queued, the limit is "
                                    f"{self.max_queue_events}; the ingest is not keeping up")
                self._lock.wait(left)
            self._queue.extend(encoded)
            self._lock.notify_all()

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every queued event is delivered or rejected (``TimeoutError`` after
        ``timeout_s``)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            self._flushing += 1
            self._lock.notify_all()  # do not linger for a fuller batch
            try:
                while self._queue or self._in_flight:
                    self._check()
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        raise TimeoutError(f"{len(self._queue) + self._in_flight} events "
                                           "not delivered yet")
                    self._lock.wait(left if left is not None else 1.0)
                self._check()
            finally:
                self._flushing -= 1

    def close(self, timeout_s: float | None = 30.0) -> None:
        """Flush (at most ``timeout_s``), then stop; :class:`RapportError` when events were
        left undelivered."""
        try:
            self.flush(timeout_s)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._closing = True
                self._abandon = True
                left = len(self._queue) + self._in_flight
                self._lock.notify_all()
            self._thread.join(self.request_timeout_s + 1)
        with self._lock:
            self._check()
        if left:
            raise RapportError(f"{left} events were not delivered before close")

    def __enter__(self) -> RapportClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self) -> None:
        if self._fatal is not None:
            raise self._fatal

    # --- the sender thread -----------------------------------------------------------------

    def _take(self) -> list[bytes] | None:
        """The next batch (None when the client stops): waits for a first event, then up to
        ``linger_s`` for more unless a flush is waiting."""
        with self._lock:
            while not self._queue:
                if self._closing or self._fatal:
                    return None
                self._lock.wait(0.5)
            deadline = time.monotonic() + self.linger_s
            while len(self._queue) < self.max_batch_events and not self._flushing \
                    and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            batch: list[bytes] = []
            size = 2
            while self._queue and len(batch) < self.max_batch_events \
                    and size + len(self._queue[0]) + 1 <= self.max_batch_bytes:
                item = self._queue.popleft()
                batch.append(item)
                size += len(item) + 1
            self._in_flight = len(batch)
            self._lock.notify_all()  # room in the queue
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                break
            try:
                self._deliver(batch)
            except _Stop:
                pass
            except RapportError as error:
                with self._lock:
                    self._fatal = error
            except Exception as error:  # the thread must report, not die
                log.exception("rapport client failed")
                with self._lock:
                    self._fatal = RapportError(f"client failed: {error}")
            with self._lock:
                self._in_flight = 0
                self._lock.notify_all()
                if self._fatal is not None:
                    break
        if self._connection is not None:
            self._connection.close()

    def _deliver(self, batch: list[bytes]) -> None:
        attempt = 0
        while True:
            if self._abandon:
                raise _Stop()
            try:
                status, headers, body = self._post(b"[" + b",".join(batch) + b"]")
            except (OSError, http.client.HTTPException) as error:
                self._reset()
                attempt += 1
                wait = self._backoff(attempt)
                log.warning("ingest not reachable (%s); retrying in %.1f s",
                            type(error).__name__, wait)
                self._sleep(wait)
                continue
            if status in (200, 202):
                self._count(len(batch))
                return
            if status in (207, 422):
                self._reject(batch, body)
                return
            if status == 413 and len(batch) > 1:
                half = len(batch) // 2
                self._deliver(batch[:half])
                self._deliver(batch[half:])
                return
            retry_after = _retry_after(headers)
            if status == 429:
                wait = retry_after if retry_after is not None else self._backoff(attempt + 1)
                log.info("ingest limit reached (%s); retrying in %.1f s",
                         _error(body) or "429", wait)
                self._sleep(wait)
                continue
            if status == 408 or status >= 500:
                attempt += 1
                wait = self._backoff(attempt)
                if retry_after is not None:
                    wait = max(wait, min(retry_after, self.backoff_max_s))
                log.warning("ingest answered %d (%s); retrying in %.1f s", status,
                            _error(body) or "no reason", wait)
                self._sleep(wait)
                continue
            raise RapportError(f"ingest refused the events: {status} "
                               f"{_error(body) or ''}".strip(), status)

    def _post(self, body: bytes) -> tuple[int, http.client.HTTPMessage, bytes]:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._parts.scheme == "https" \
                else http.client.HTTPConnection
            self._connection = kind(self._parts.hostname or "", self._parts.port,
                                    timeout=self.request_timeout_s)
        self._connection.request("POST", self._path, body=body, headers=self._headers)
        response = self._connection.getresponse()
        data = response.read()
        self.requests += 1
        if response.getheader("Connection", "").lower() == "close":
            self._reset()
        return response.status, response.headers, data

    def _reset(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _count(self, accepted: int) -> None:
        with self._lock:
            self.delivered += accepted

    def _reject(self, batch: list[bytes], body: bytes) -> None:
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {}
        errors = answer.get("errors", []) if isinstance(answer, dict) else []
        with self._lock:
            self.delivered += int(answer.get("accepted", 0)) if isinstance(answer, dict) else 0
            for error in errors:
                index = error.get("index")
                event: Mapping[str, Any] = {}
                if isinstance(index, int) and 0 <= index < len(batch):
                    event = json.loads(batch[index])
                self.rejections.append(Rejection(event, str(error.get("field")),
                                                 str(error.get("error"))))
                log.warning("ingest rejected an event: %s", error.get("error"))

    def _backoff(self, attempt: int) -> float:
        base = min(self.backoff_initial_s * 2.0 ** (attempt - 1), self.backoff_max_s)
        return base * random.uniform(0.5, 1.0)  # jitter: clients do not retry in step

    def _sleep(self, seconds: float) -> None:
        with self._lock:
            deadline = time.monotonic() + seconds
            while not self._abandon:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._lock.wait(left)
        raise _Stop()


class _Stop(Exception):
    """The client was closed while a batch waited for a retry."""


def _retry_after(headers: http.client.HTTPMessage) -> float | None:
    value = headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def _error(body: bytes) -> str | None:
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    return str(answer.get("error")) if isinstance(answer, dict) and "error" in answer \
        else None
