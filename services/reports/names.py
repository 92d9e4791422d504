"""How the report pages name participants (issue 19 point 1): by the clinic's display label
when its directory has one (the pseudonym kept in the tooltip), else by the shortened
pseudonym. Labels are shown to the clinic's own tokens only; an ``admin`` token spans every
clinic and is not the clinic, so it sees pseudonyms. JSON answers never carry labels.
"""

from __future__ import annotations

import asyncio
from typing import Any

from services.auth import Viewer
from services.reports.html import esc
from services.store import ReportStore


def _short(pseudonym: Any) -> str:
    text = "" if pseudonym is None else str(pseudonym)
    return text[:10] + "…" if len(text) > 12 else text


def name_html(pseudonym: Any, labels: dict[str, str] | None = None) -> str:
    """A participant as pages name them: the clinic's display label when it has one (issue
    19; the pseudonym in the tooltip), else the shortened pseudonym."""
    label = (labels or {}).get(str(pseudonym)) if pseudonym else None
    if label:
        return f'<span class="label" title="{esc(pseudonym)}">{esc(label)}</span>'
    return f'<span title="{esc(pseudonym)}">{esc(_short(pseudonym))}</span>'


async def page_labels(store: ReportStore, seen: Viewer, clinic: str | None) -> dict[str, str]:
    """The clinic's display labels, for that clinic's own tokens only (an admin spans
    clinics and is not the clinic: it sees pseudonyms)."""
    if seen.clinic is None or clinic != seen.clinic:
        return {}
    return await asyncio.to_thread(store.labels_for, clinic)
