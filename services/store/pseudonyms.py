"""Pseudonymization of participant ids where they enter Rapport (issue 16 finding 5;
METRICS.md §9–§10).

The ingest (HTTP, WebSocket, WebRTC) and ``rapport run``'s feed replace every participant id
of an event by its pseudonym before the event is published, so the events topic, the
workers' state, logs and outputs (roster, IPUs, speaker changes, interruptions, collisions,
lapses, ``quality.participants``, ``network_degraded`` alerts) and the database hold
pseudonyms only. Each id is replaced by

    pseudonym(id) = hex(HMAC-SHA256(key, id as UTF-8))        (64 lowercase hex digits)

with ``key`` the UTF-8 bytes of ``RAPPORT_PSEUDONYM_KEY``, or, when that is not set, of the
random key Rapport generates once and keeps in ``<data dir>/pseudonym.key`` (mode 0600), so a
restart keeps the same pseudonyms. The mapping back stays with the platform: it holds the ids
and, given the key, computes the pseudonym of its own therapists (``/v1/therapists/{id}``
takes the pseudonym). Roles, session ids and clinic ids are not personal and stay as sent.

The store applies the same function to what it receives (for platforms writing straight
into Kafka), and a value that already is a pseudonym (64 lowercase hex digits) is kept as it
is: an id is never pseudonymized twice. The HMAC is over the id alone, not the clinic and the
id: pseudonyms stay what they were before issue 16 (stored rows, therapists' links), and a
platform computes its therapists' pseudonyms from the id alone; every read is scoped by clinic
anyway (docs/reports.md).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from models.errors import ConfigError

log = logging.getLogger(__name__)

KEY_FILE = "pseudonym.key"
MIN_KEY_LENGTH = 16
PSEUDONYM = re.compile(r"[0-9a-f]{64}")  # what __call__ returns: hex of a SHA-256 HMAC

# Fields of classified events and alerts (models/floor.py, models/alerts.py) whose string
# value is a participant id.
ID_FIELDS = frozenset({"participant_id", "from", "to", "by", "of", "preceded_by", "broken_by"})
# Fields whose value is keyed by participant id (report "quality.participants").
ID_KEYED_FIELDS = frozenset({"participants"})


class Pseudonymizer:
    """Keyed hash of participant ids; ``apply`` rewrites whole records."""

    __slots__ = ("_cache", "_key")

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_LENGTH:
            raise ConfigError("RAPPORT_PSEUDONYM_KEY", "must be at least 16 characters")
        self._key = key
        self._cache: dict[str, str] = {}

    def __call__(self, participant_id: str) -> str:
        found = self._cache.get(participant_id)
        if found is None and is_pseudonym(participant_id):
            return participant_id  # pseudonymized where it entered (never twice)
        if found is None:
            found = hmac.new(self._key, participant_id.encode("utf-8"), hashlib.sha256).hexdigest()
            if len(self._cache) < 100_000:
                self._cache[participant_id] = found
        return found

    def apply(self, value: Any) -> Any:
        """A copy of ``value`` (JSON-like) with every participant id replaced."""
        return _rewrite(value, self)


def is_pseudonym(value: str) -> bool:
    """Whether ``value`` has the form of a pseudonym (64 lowercase hex digits)."""
    return PSEUDONYM.fullmatch(value) is not None


def _rewrite(value: Any, hide: Callable[[str], str]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for name, item in value.items():
            if name in ID_FIELDS and isinstance(item, str):
                out[name] = hide(item)
            elif name in ID_KEYED_FIELDS and isinstance(item, dict):
                out[name] = {hide(str(k)): _rewrite(v, hide) for k, v in item.items()}
            else:
                out[name] = _rewrite(item, hide)
        return out
    if isinstance(value, list):
        return [_rewrite(item, hide) for item in value]
    return value


def load_key(configured: str | None, data_dir: Path, *, file: str = KEY_FILE,
             variable: str = "RAPPORT_PSEUDONYM_KEY") -> bytes:
    """The configured key, else the key ``file`` in ``data_dir`` (created once, mode 0600);
    ``variable`` names the setting in the warning when the file is created."""
    if configured:
        return configured.encode("utf-8")
    path = data_dir / file
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.exists():
        return _read_key(path)
    # Written to a private temporary file, then linked into place: a concurrent process
    # either wins the link or reads the complete key of the one that did.
    temporary = data_dir / f".{file}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    try:
        os.link(temporary, path)
        log.warning("generated a new key in %s; keep it (and back it up): without it what "
                    "it protects cannot be read back; or set %s", path, variable)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("%s is readable by others (mode %o); it should be 0600", path, mode)
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(str(path), "key file is empty or too short")
    return key.encode("utf-8")
