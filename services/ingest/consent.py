"""Consent enforcement at the ingest (issue 19, point 4).

A clinic whose policy requires consent (``PUT /v1/clinic/policy {"require_consent": true}``;
services/store/policies.py) has every session with a ``client`` who has no recorded consent
to analysis (``analysis: true``, services/store/directory.py) refused here, before anything
reaches Kafka:

- the ``session.start`` naming such a client (or a ``participant.join`` of one) is rejected
  with a reason naming the field, e.g. ``participants[1].participant_id: client has no
  recorded consent to analysis (clinic requires it)``, and counted under the reason
  ``consent`` (``rapport_ingest_rejected_total``);
- every later event of that session (HTTP batch, WebSocket, WebRTC) is rejected likewise:
  nothing of it is published, so nothing of it is analysed. Refused events are *not* copied
  to the dead-letter topic: that would keep data the client did not agree to have analysed.

The store is asked in a worker thread; answers are cached :data:`CACHE_TTL_S` seconds, so a
revocation (or a policy change) takes effect for new sessions within seconds. The ingest is
the enforcement point for platforms that post to it; platforms writing straight into Kafka
bypass it, which is why the report consumer refuses such reports too
(services/reports/consumer.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

from models.errors import ValidationError
from models.events import ParticipantJoin, SessionStart
from services.store.pseudonyms import Pseudonymizer

log = logging.getLogger(__name__)

CACHE_TTL_S = 5.0
MAX_REFUSED = 10_000  # refused sessions remembered (their later events are refused too)
REASON = "consent"  # the metric label of these rejections
NO_CONSENT = "client has no recorded consent to analysis (clinic requires it)"


@runtime_checkable
class ConsentSource(Protocol):
    """What the gate needs from the store (:class:`~services.store.ReportStore`)."""

    def get_policy(self, clinic_id: str) -> Any: ...

    def consented(self, clinic_id: str, participant_ids: list[str]) -> set[str]: ...


class ConsentRefused(ValidationError):
    """An event refused for want of consent (``field`` names the client or the session)."""


Key = tuple[str, str]  # (clinic_id, session_id)


class ConsentGate:
    """The ingest's view of clinics' consent policies, cached, and the sessions it refused."""

    def __init__(self, source: object | None, *, ttl_s: float = CACHE_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        # A token verifier that is not the store (a test double) has no consent records:
        # then nothing is enforced (the report consumer still is).
        self.source = source if isinstance(source, ConsentSource) else None
        self.ttl_s = ttl_s
        self.clock = clock
        self._policies: dict[str, tuple[float, bool]] = {}
        self._consents: dict[Key, tuple[float, bool]] = {}
        self._refused: OrderedDict[Key, str] = OrderedDict()

    # --- lookups (cached; the store runs in a thread) ------------------------------------

    async def required(self, clinic_id: str) -> bool:
        if self.source is None:
            return False
        now = self.clock()
        cached = self._policies.get(clinic_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        policy = await asyncio.to_thread(self.source.get_policy, clinic_id)
        required = bool(policy.require_consent)
        self._policies[clinic_id] = (now + self.ttl_s, required)
        return required

    async def missing(self, clinic_id: str, pseudonyms: Iterable[str]) -> frozenset[str]:
        """Which of these clients lack consent, when the clinic requires it (else none)."""
        wanted = sorted(set(pseudonyms))
        if not wanted or not await self.required(clinic_id):
            return frozenset()
        now = self.clock()
        unknown = [p for p in wanted if (hit := self._consents.get((clinic_id, p))) is None
                   or hit[0] <= now]
        if unknown:
            assert self.source is not None
            given = await asyncio.to_thread(self.source.consented, clinic_id, unknown)
            for pseudonym in unknown:
                self._consents[(clinic_id, pseudonym)] = (now + self.ttl_s, pseudonym in given)
            if len(self._consents) > 4 * MAX_REFUSED:
                self._consents = {k: v for k, v in self._consents.items() if v[0] > now}
        return frozenset(p for p in wanted if not self._consents[(clinic_id, p)][1])

    # --- refused sessions ----------------------------------------------------------------

    def refuse(self, clinic_id: str, session_id: str, field: str) -> ConsentRefused:
        self._refused[(clinic_id, session_id)] = field
        self._refused.move_to_end((clinic_id, session_id))
        while len(self._refused) > MAX_REFUSED:
            self._refused.popitem(last=False)
        log.info("session %s of clinic %s refused: a client has no recorded consent "
                 "(%s)", session_id, clinic_id, field)
        return ConsentRefused(field, NO_CONSENT)

    def refused(self, clinic_id: str, session_id: str) -> bool:
        return (clinic_id, session_id) in self._refused

    def later_event(self, clinic_id: str, session_id: str) -> ConsentRefused:
        return ConsentRefused("session_id", f"session {session_id!r} was refused: a client "
                                            "has no recorded consent to analysis (clinic "
                                            "requires it)")

    async def check(self, clinic_id: str, items: Iterable[tuple[int, bytes, Any]],
                    hide: Pseudonymizer) -> ConsentCheck:
        """Look up, before a body is validated, the consent of every client it names."""
        clients = [hide(str(pid)) for pid in _clients_named(item[2] for item in items)]
        return ConsentCheck(self, clinic_id, await self.missing(clinic_id, clients), hide)


def _clients_named(values: Iterable[Any]) -> list[object]:
    """Participant ids of clients in raw ``session.start`` and ``participant.join`` values
    (unvalidated: anything odd is left to the validator, which will reject it anyway)."""
    found: list[object] = []
    for value in values:
        if not isinstance(value, dict):
            continue
        if value.get("type") == "session.start" and isinstance(value.get("participants"),
                                                                list):
            found.extend(p.get("participant_id") for p in value["participants"]
                         if isinstance(p, dict) and p.get("role") == "client"
                         and isinstance(p.get("participant_id"), str))
        elif value.get("type") == "participant.join" and value.get("role") == "client" \
                and isinstance(value.get("participant_id"), str):
            found.append(value["participant_id"])
    return found


class ConsentCheck:
    """The verdicts for one body: :meth:`refusal` of each validated event, in order."""

    def __init__(self, gate: ConsentGate, clinic_id: str, missing: frozenset[str],
                 hide: Pseudonymizer) -> None:
        self.gate = gate
        self.clinic_id = clinic_id
        self.missing = missing
        self.hide = hide

    def refusal(self, event: object) -> ConsentRefused | None:
        session_id = getattr(event, "session_id", None)
        if not isinstance(session_id, str):
            return None
        if self.gate.refused(self.clinic_id, session_id):
            return self.gate.later_event(self.clinic_id, session_id)
        if isinstance(event, SessionStart):
            for index, participant in enumerate(event.participants):
                if participant.role == "client" \
                        and self.hide(participant.participant_id) in self.missing:
                    return self.gate.refuse(self.clinic_id, session_id,
                                            f"participants[{index}].participant_id")
        if isinstance(event, ParticipantJoin) and event.role == "client" \
                and self.hide(event.participant_id) in self.missing:
            return self.gate.refuse(self.clinic_id, session_id, "participant_id")
        return None
