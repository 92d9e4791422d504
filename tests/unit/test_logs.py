"""Structured logs (services/logs.py): the JSON and text formats and the redaction guard."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest

from models.errors import ConfigError
from models.log_context import context
from services import logs

SDP_OFFER = ("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
             "a=fingerprint:sha-256 AB:CD\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n")


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO, list[logging.Handler]]]:
    """A private logger writing JSON into a buffer through the redaction filter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.RedactionFilter())
    logger = logging.getLogger("rapport.test.logs")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    yield logger, stream, [handler]
    logger.handlers.clear()
    logger.propagate = True


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def test_json_is_one_object_per_line_with_the_standard_fields(capture) -> None:
    logger, stream, _ = capture
    logger.info("first line\nsecond line")
    logger.warning("plain")
    first, second = lines(stream)
    assert list(first)[:4] == ["ts", "level", "logger", "message"]
    assert first["level"] == "INFO" and first["logger"] == "rapport.test.logs"
    assert first["message"] == "first line\nsecond line"  # escaped: still one line
    assert second["level"] == "WARNING"
    ts = str(first["ts"])
    assert ts.endswith("Z") and ts[10] == "T" and len(ts) == len("2026-11-26T10:00:00.123Z")


def test_context_fields_follow_in_order_when_present(capture) -> None:
    logger, stream, _ = capture
    logger.warning("rejected", extra=context(
        topic="rapport.events", offset=120, partition=3, session="s-9f2", reason="late",
        clinic=None))
    (entry,) = lines(stream)
    assert list(entry) == ["ts", "level", "logger", "message", "session", "partition",
                           "offset", "topic", "reason"]
    assert entry["session"] == "s-9f2" and entry["partition"] == 3 and entry["offset"] == 120


def test_exceptions_are_kept_in_the_same_object(capture) -> None:
    logger, stream, _ = capture
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed", extra={"session": "s1"})
    (entry,) = lines(stream)
    assert entry["message"] == "failed" and "ValueError: boom" in str(entry["exc"])


def test_unserializable_extras_become_strings(capture) -> None:
    logger, stream, _ = capture
    logger.info("x", extra={"where": object, "items": {1, 2}})
    (entry,) = lines(stream)
    assert entry["where"] == str(object) and sorted(entry["items"]) == [1, 2]  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["token", "authorization", "sdp", "password",
                                 "participant_name", "access_token", "Authorization",
                                 "display_name", "api_key", "secret"])
def test_sensitive_extra_fields_are_masked(capture, key: str) -> None:
    logger, stream, _ = capture
    logger.info("request", extra={key: "s3cr3t-value", "session": "s1"})
    raw = stream.getvalue()
    assert "s3cr3t-value" not in raw
    (entry,) = lines(stream)
    assert entry[key] == logs.REDACTED and entry["session"] == "s1"


def test_nested_sensitive_keys_are_masked(capture) -> None:
    logger, stream, _ = capture
    offer = {"sdp": SDP_OFFER, "type": "offer", "role": "client",
             "participant": {"name": "Jane Doe", "id": "p1"},
             "headers": [{"authorization": "Bearer abc"}]}
    logger.info("offer", extra={"offer": offer})
    raw = stream.getvalue()
    assert "fingerprint" not in raw and "Jane" not in raw and "abc" not in raw
    (entry,) = lines(stream)
    assert entry["offer"] == {"sdp": logs.REDACTED, "type": "offer", "role": "client",
                              "participant": {"name": logs.REDACTED, "id": "p1"},
                              "headers": [{"authorization": logs.REDACTED}]}


def test_bytes_payloads_are_never_logged(capture) -> None:
    logger, stream, _ = capture
    audio = bytes(range(256)) * 4
    logger.info("frame %s from %s", audio, "p1", extra={"raw": b"\x00secret-bytes",
                                                         "buf": bytearray(b"zz")})
    logger.info(b"raw message bytes")  # type: ignore[arg-type]
    raw = stream.getvalue()
    assert "secret-bytes" not in raw and "\\x00" not in raw and "raw message" not in raw
    first, second = lines(stream)
    assert first["message"] == "frame <1024 bytes> from p1"
    assert first["raw"] == "<13 bytes>" and first["buf"] == "<2 bytes>"
    assert second["message"] == "<17 bytes>"


def test_mapping_args_are_scrubbed(capture) -> None:
    logger, stream, _ = capture
    logger.info("user %(name)s with %(token)s on %(topic)s",
                {"name": "Jane", "token": "t0k3n", "topic": "rapport.events"})
    (entry,) = lines(stream)
    assert entry["message"] == "user [redacted] with [redacted] on rapport.events"


def test_named_tuple_args_are_logged_not_crashed_on(capture) -> None:
    # Faust's recovery logs sets of aiokafka TopicPartition (a named tuple) as %-args.
    from aiokafka.structs import TopicPartition

    logger, stream, _ = capture
    logger.warning("still waiting for %r and %s", {TopicPartition("rapport-changelog", 3)},
                   (TopicPartition("rapport.events", 1), b"raw"))
    (entry,) = lines(stream)
    assert "partition=3" in entry["message"] and "partition=1" in entry["message"]
    assert "<3 bytes>" in entry["message"]


@pytest.mark.parametrize("message, secret", [
    ("header Authorization: Bearer eyJhbGciOi.payload.sig was refused", "eyJhbGciOi"),
    ("basic auth basic dXNlcjpwYXNz here", "dXNlcjpwYXNz"),
    ("token rpt_Q2hhbmdlTWVQbGVhc2UxMjM0NTY3ODkw revoked", "Q2hhbmdlTWVQ"),
    (f"bad offer: {SDP_OFFER}", "fingerprint"),
    ("bad offer: " + json.dumps(SDP_OFFER), "fingerprint"),
])
def test_secrets_inside_messages_are_masked(capture, message: str, secret: str) -> None:
    logger, stream, _ = capture
    logger.warning("%s", message)
    assert secret not in stream.getvalue()
    (entry,) = lines(stream)
    assert "redacted" in str(entry["message"])


def test_ordinary_messages_are_untouched(capture) -> None:
    logger, stream, _ = capture
    logger.info("session %s closed by %s at offset %d", "s1", "idle_timeout", 42)
    (entry,) = lines(stream)
    assert entry["message"] == "session s1 closed by idle_timeout at offset 42"


def test_text_format_appends_context_in_brackets() -> None:
    record = logging.LogRecord("streams.app", logging.INFO, __file__, 1, "closed %s",
                               ("s1",), None)
    record.session, record.partition = "s1", 3
    line = logs.TextFormatter().format(record)
    assert line.endswith(" INFO streams.app: closed s1 [session=s1 partition=3]")
    plain = logging.LogRecord("x", logging.WARNING, __file__, 1, "hello", (), None)
    assert logs.TextFormatter().format(plain).endswith(" WARNING x: hello")


def test_resolve_format() -> None:
    assert logs.resolve_format(None, {}) == "text"
    assert logs.resolve_format(None, {"RAPPORT_LOG_FORMAT": "JSON"}) == "json"
    assert logs.resolve_format("text", {"RAPPORT_LOG_FORMAT": "json"}) == "text"
    assert logs.resolve_format(None, {"RAPPORT_LOG_FORMAT": ""}) == "text"
    with pytest.raises(ConfigError, match="RAPPORT_LOG_FORMAT"):
        logs.resolve_format(None, {"RAPPORT_LOG_FORMAT": "xml"})


def test_configure_installs_one_filtered_handler_and_respects_a_host() -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        # A host (here pytest) already has handlers: configure leaves logging alone ...
        if root.handlers:
            assert logs.configure("INFO", "json") is None
        # ... unless forced; a second call replaces its own handler.
        stream = io.StringIO()
        handler = logs.configure("INFO", "json", stream=stream, force=True)
        assert handler is not None and root.handlers == [handler]
        again = logs.configure("DEBUG", "json", stream=stream)
        assert again is not None and root.handlers == [again]
        logging.getLogger("services.x").debug("hi", extra={"token": "abc123"})
        (entry,) = lines(stream)
        assert entry["logger"] == "services.x" and entry["token"] == logs.REDACTED
    finally:
        root.handlers[:] = saved
        root.setLevel(level)


def test_default_stream_is_stderr() -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        handler = logs.configure("WARNING", "text", force=True)
        assert isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
