"""The project's one exception tree.

Everything Rapport raises on purpose derives from :class:`RapportError`. Bad input raises a
:class:`ValidationError`, which is also a ``ValueError`` and always names the offending field,
so a caller can report "which field is wrong and why" and keep the raw event (dead-letter).
"""

from __future__ import annotations


class RapportError(Exception):
    """Root of every error Rapport raises deliberately."""


class ValidationError(RapportError, ValueError):
    """An input (wire event, request, argument) is invalid.

    ``field`` is a dotted path such as ``"activity.voiced"``; ``reason`` says why.
    ``str(error)`` is ``"<field>: <reason>"``.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ConfigError(ValidationError):
    """A configuration value (threshold, setting) is out of range."""


class LateEventError(ValidationError):
    """An event arrived later than ``allowed_lateness_ms`` behind its session's newest event."""


class SessionStateError(ValidationError):
    """An event contradicts its session's state (e.g. arrives after ``session.end``)."""
