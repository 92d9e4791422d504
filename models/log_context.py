"""The context fields of a structured log record (docs/operations.md, "Logs").

A call site passes them as ``extra``: ``log.warning("rejected", extra=context(session=sid,
partition=p, offset=o, topic=t))``; the formatters of services/logs.py write them after the
message, in the order of :data:`CONTEXT_FIELDS`. Every layer logs with them (the Faust adapter
included), so they live here, below streams/ and services/; configuring the output (formats,
redaction) stays in services/logs.py. ``session`` is the session id as the platform sent it
(an opaque id, never a person's name).
"""

from __future__ import annotations

from typing import Any

#: Context fields, in the order they are written (others follow in the order given).
CONTEXT_FIELDS = ("session", "partition", "offset", "topic", "clinic", "reason", "field")


def context(**fields: Any) -> dict[str, Any]:
    """``extra`` for a log call, without the fields that are None:
    ``log.info("...", extra=context(session=sid, partition=p, offset=o))``."""
    return {k: v for k, v in fields.items() if v is not None}
