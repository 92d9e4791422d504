"""Display labels of the clinic directory, sealed at rest (issue 19, point 1).

A clinic names its therapists (and, if it wants, clients) for its own staff: "Dr. Lee". The
label is personal data that only that clinic may see, so the ``directory`` table never holds it
in clear: each label is sealed with AES-256-GCM under the label key, with the row's clinic and
participant pseudonym as associated data. A copied database without the key reveals nothing,
and a sealed label moved to another row (another clinic or participant) fails to open instead
of naming the wrong person. Reports, analytics, Kafka, logs and metrics keep pseudonyms; labels
are joined in only when a page or the directory API answers the clinic.

The key: ``RAPPORT_LABEL_KEY`` (at least 16 characters; its SHA-256 is the AES key), else a
random key generated once into ``<data dir>/label.key`` (mode 0600), like the pseudonym key.
Losing it loses the labels (not the reports); rotating it means re-entering them.

Sealed form: ``v1:`` then URL-safe base64 of the 12-byte nonce and the ciphertext with its tag.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from models.errors import ConfigError, ValidationError

KEY_FILE = "label.key"
KEY_VARIABLE = "RAPPORT_LABEL_KEY"
MIN_KEY_LENGTH = 16
MAX_LABEL_LENGTH = 200  # characters; sealed, it fits the column (schema.LABEL_LENGTH)
VERSION = "v1:"
NONCE_LENGTH = 12


class LabelError(ValueError):
    """A sealed label that does not open under this key (wrong key, or moved to another row)."""


class LabelSealer:
    """Seals and opens display labels for one (clinic, participant) row."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_LENGTH:
            raise ConfigError(KEY_VARIABLE, f"must be at least {MIN_KEY_LENGTH} characters")
        self._aead = AESGCM(hashlib.sha256(key).digest())

    def seal(self, clinic_id: str, participant: str, label: str) -> str:
        """The sealed form of ``label`` (checked: 1 to 200 printable characters)."""
        clean = check_label(label)
        nonce = os.urandom(NONCE_LENGTH)
        sealed = self._aead.encrypt(nonce, clean.encode("utf-8"), _bound(clinic_id, participant))
        return VERSION + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, clinic_id: str, participant: str, sealed: str) -> str:
        """The label sealed for this row; :class:`LabelError` if it does not open."""
        if not sealed.startswith(VERSION):
            raise LabelError(f"label: unknown sealed format {sealed[:3]!r}")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(VERSION):].encode("ascii"))
            plain = self._aead.decrypt(raw[:NONCE_LENGTH], raw[NONCE_LENGTH:],
                                       _bound(clinic_id, participant))
        except (InvalidTag, binascii.Error, ValueError) as error:
            raise LabelError("label: does not open with this label key (was "
                             f"{KEY_VARIABLE} changed?)") from error
        return plain.decode("utf-8")


def _bound(clinic_id: str, participant: str) -> bytes:
    # The row the label belongs to, unambiguous (ids contain no NUL).
    return f"{clinic_id}\x00{participant}".encode()


def check_label(label: object) -> str:
    """A display label: a string of 1 to 200 characters after trimming, no control characters;
    else :class:`~models.errors.ValidationError` naming ``label``."""
    if not isinstance(label, str):
        raise ValidationError("label", "must be a string")
    clean = label.strip()
    if not clean:
        raise ValidationError("label", "must not be empty")
    if len(clean) > MAX_LABEL_LENGTH:
        raise ValidationError("label", f"must be at most {MAX_LABEL_LENGTH} characters")
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in clean):
        raise ValidationError("label", "must not contain control characters")
    return clean
