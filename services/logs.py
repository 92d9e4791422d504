"""Structured logging for every ``rapport`` process (configured once, in ``services.cli.main``).

Two formats on stderr:

- ``text`` (the default): ``2026-11-26 10:00:00,123 INFO streams.app: message`` followed by the
  context fields in brackets when a record has any (``[session=s1 partition=3 offset=120]``);
- ``json``: one JSON object per line with ``ts`` (UTC, ISO 8601, milliseconds), ``level``,
  ``logger``, ``message``, then the context fields present on the record (``session``,
  ``partition``, ``offset``, ``topic``, ``clinic``, ``reason``, ``field``, … — whatever the call
  passed as ``extra``), and ``exc`` with the traceback of an exception.

Choose with ``rapport --log-format json|text`` or ``RAPPORT_LOG_FORMAT``; the option wins.
Containers (deploy/Dockerfile) set ``RAPPORT_LOG_FORMAT=json``.

Context goes in ``extra``, built with :func:`models.log_context.context`, e.g.
``log.warning("rejected", extra=context(session=sid, partition=p, offset=o, topic=t))``.
``session`` is the session id as the platform sent it (an opaque id, never a person's name;
participant ids are pseudonymized before storage).

Whatever a call site passes, the :class:`RedactionFilter` on the handler guarantees that no
token, authorization header, SDP body, password or name reaches the output: such fields
(by key, also nested in dicts) are masked as ``[redacted]``, bytes payloads (audio, raw
records) are replaced by their size, and bearer tokens, ``rpt_`` API tokens and SDP bodies
found inside a message are masked too.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import IO, Any

from models.errors import ConfigError
from models.log_context import CONTEXT_FIELDS

FORMATS = ("text", "json")
DEFAULT_FORMAT = "text"
ENV_FORMAT = "RAPPORT_LOG_FORMAT"
REDACTED = "[redacted]"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Keys (case-insensitive) whose values are never logged.
SENSITIVE_KEYS = frozenset({
    "token", "authorization", "sdp", "password", "name", "participant_name",
    "secret", "api_key", "private_key", "cookie", "audio", "pseudonym_key",
})
#: ... nor are keys ending with one of these (``access_token``, ``display_name``, ...).
SENSITIVE_SUFFIXES = ("_token", "_name", "_password", "_secret", "_sdp")

# The attributes every LogRecord has: anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}

_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_API_TOKEN = re.compile(r"\brpt_[A-Za-z0-9_-]+")
# An SDP body: "v=0" followed by SDP lines ("o=", "s=", "m=", "a=" ...), up to the end.
_SDP = re.compile(r"v=0(?:\\r\\n|\\n|\r?\n)[a-z]=.*", re.DOTALL)


def is_sensitive(key: str) -> bool:
    lowered = key.lower()
    return lowered in SENSITIVE_KEYS or lowered.endswith(SENSITIVE_SUFFIXES)


def _describe_bytes(value: bytes | bytearray | memoryview) -> str:
    return f"<{len(value)} bytes>"


def scrub(value: Any, depth: int = 0) -> Any:
    """``value`` with sensitive keys masked and bytes replaced by their size (recursively
    through dicts, lists and tuples, at most 5 levels deep)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _describe_bytes(value)
    if depth >= 5:
        return value
    if isinstance(value, Mapping):
        return {k: REDACTED if isinstance(k, str) and is_sensitive(k) else scrub(v, depth + 1)
                for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(item, depth + 1) for item in value]
    if isinstance(value, tuple):
        items = [scrub(item, depth + 1) for item in value]
        # A named tuple (aiokafka's TopicPartition, in Faust's recovery warnings) takes its
        # fields as arguments; building one from a single iterable raised inside logging.
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    return value


def scrub_text(text: str) -> str:
    """Mask bearer tokens, ``rpt_`` API tokens and SDP bodies inside free text."""
    if "v=0" in text:
        text = _SDP.sub("[sdp redacted]", text)
    if "rpt_" in text:
        text = _API_TOKEN.sub(REDACTED, text)
    lowered = text.lower()
    if "bearer" in lowered or "basic" in lowered:
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return text


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The fields a call site added with ``extra``: context fields first."""
    extras = {k: v for k, v in vars(record).items()
              if k not in _STANDARD and not k.startswith("_")}
    ordered = {k: extras.pop(k) for k in CONTEXT_FIELDS if k in extras}
    ordered.update(extras)
    return ordered


class RedactionFilter(logging.Filter):
    """Masks secrets and payloads on every record that reaches the handler (never drops a
    record): sensitive ``extra`` fields, bytes arguments and values, and tokens or SDP bodies
    in the message. Attach it to handlers, so records of every logger pass through it."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key in [k for k in vars(record) if k not in _STANDARD and not k.startswith("_")]:
            value = getattr(record, key)
            if is_sensitive(key):
                setattr(record, key, REDACTED)
            elif isinstance(value, (bytes, bytearray, memoryview, Mapping, list, tuple)):
                setattr(record, key, scrub(value))
        args = record.args
        if isinstance(args, Mapping):
            record.args = scrub(args)
        elif isinstance(args, tuple) and args:
            record.args = tuple(scrub(a) for a in args)
        if isinstance(record.msg, (bytes, bytearray, memoryview)):
            record.msg = _describe_bytes(record.msg)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: let the formatter report it as usual
            return True
        cleaned = scrub_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _utc_iso(created: float) -> str:
    moment = datetime.fromtimestamp(created, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, context fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in extra_fields(record).items():
            if key not in entry:
                entry[key] = _jsonable(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: message [key=value ...]`` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        extras = extra_fields(record)
        if extras:
            line += " [" + " ".join(f"{k}={v}" for k, v in extras.items()) + "]"
        return line


def resolve_format(explicit: str | None = None,
                   env: Mapping[str, str] | None = None) -> str:
    """``--log-format``, else ``$RAPPORT_LOG_FORMAT``, else ``text``. Raises ConfigError."""
    env = os.environ if env is None else env
    if explicit:
        name, value = "--log-format", explicit
    else:
        name, value = ENV_FORMAT, env.get(ENV_FORMAT, "") or DEFAULT_FORMAT
    value = value.strip().lower()
    if value not in FORMATS:
        raise ConfigError(name, f"must be text or json, got {value!r}")
    return value


def make_handler(fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactionFilter())
    return handler


class _RapportHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure` installs (so a second call replaces it)."""


class MalformedRequestFilter(logging.Filter):
    """aiohttp's server logs a request it cannot parse (a NUL in a header, a broken request
    line) as ERROR with a traceback, after answering it 400. That is the client's error, not
    the server's (issue 16 finding 7): the record becomes one INFO line naming the problem,
    shown only when the logger is enabled for INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None:
            return True
        # Imported here: aiohttp is loaded whenever its server logs, and every other
        # command (rapport analyze) need not import it.
        from aiohttp.http_exceptions import HttpProcessingError

        if not isinstance(error, HttpProcessingError):
            return True
        reason = " ".join(str(error.message).split())[:200]
        record.msg, record.args, record.exc_info, record.exc_text = (
            "malformed HTTP request answered %s: %s", (error.code, reason), None, None)
        record.levelno, record.levelname = logging.INFO, "INFO"
        return logging.getLogger(record.name).isEnabledFor(logging.INFO)


def configure(level: str = "WARNING", fmt: str = DEFAULT_FORMAT,
              stream: IO[str] | None = None, force: bool = False) -> logging.Handler | None:
    """Install one stderr handler in format ``fmt``, with the redaction filter, on the root
    logger and set its level; called once, by the entry point. Like ``logging.basicConfig``
    it leaves logging alone (returns None) when the host already configured other handlers
    (a test runner calling ``main()`` in-process), unless ``force``."""
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, _RapportHandler)]
    if not force and len(ours) != len(root.handlers):
        return None
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = _RapportHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactionFilter())
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server.filters):
        server.addFilter(MalformedRequestFilter())
    return handler
