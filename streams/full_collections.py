"""Python's full garbage collections on a timer instead of by allocation count.

CPython collects its oldest generation when enough objects have survived younger collections;
on a worker holding 2,000 live sessions (about a million tracked objects) that happened every
~9 s and paused the event loop 0.2-0.25 s each time, finding nothing to free: the cause of
the real-time benchmark's periodic latency spikes (bench/pipeline.py --timeline), which put
~3 % of quality updates behind a pause and so set the p99. Younger generations still collect
as usual (a few ms each). Here the full collection runs every ``interval_s`` instead (default
300 s in ``rapport worker``), so a pause of the same length touches ~0.1 % of updates; what
start-up created (Faust, aiokafka, numpy, ...) is frozen out of it, since it is never garbage.
Garbage cycles wait for the next full collection: a closed session's engine (~10 KB) among
them, so memory between two collections grows by what closes meanwhile.
"""

from __future__ import annotations

import gc
import logging
import time

from prometheus_client import Histogram

log = logging.getLogger(__name__)

FULL_COLLECTION_SECONDS = Histogram(
    "rapport_gc_full_collection_seconds",
    "Pause of one scheduled full garbage collection (--full-gc-interval-s).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5))

# The oldest generation's threshold counts collections of the one below; never reached.
_NEVER = 2**31 - 1


def schedule() -> None:
    """Take full collections off CPython's allocation-driven schedule (call once, after
    start-up's imports); :func:`collect` then has to run them."""
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, _NEVER)


def collect() -> float:
    """One full collection now; returns its pause in seconds (also a metric)."""
    started = time.perf_counter()
    found = gc.collect()
    paused = time.perf_counter() - started
    FULL_COLLECTION_SECONDS.observe(paused)
    log.info("full garbage collection: %d objects freed, %.0f ms", found, paused * 1000)
    return paused
