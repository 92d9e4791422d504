"""``/directory``: the clinic admin's page (issue 19, points 1 and 4): the clinic's display
labels, its consent records and its policy, with forms to change them.

Same tokens as the API (scope ``clinic-admin``; ``admin`` names the clinic with ``?clinic=``):
a bearer header or the sign-in cookie. The forms POST back to ``/directory``; like
``/signin`` they are refused unless the browser sent them from this site (services/auth.py
``same_origin``: the cookie is also SameSite=Strict), and answer ``303`` back to the page.
Revoking a client's consent here erases their data, as ``PUT …/consent`` does; the page
says so next to the button. Labels are shown only here and never logged.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from models.errors import ValidationError
from services.auth import ApiError, same_origin, viewer
from services.reports.auth import STORE
from services.reports.governance import admin_clinic, administers_page, parse_policy
from services.reports.html import esc, page
from services.store.directory import check_role
from services.store.labels import check_label

log = logging.getLogger(__name__)

FORM_ACTIONS = ("label", "remove", "consent", "policy")
# What the page says after a form (a fixed text per code: nothing from the URL is echoed,
# so a crafted link cannot put words on the clinic's page).
DONE = {"label": "Label saved.", "remove": "Label removed.", "consent": "Consent recorded.",
        "revoke": "Consent revoked; the client's stored sessions were erased.",
        "policy": "Policy saved."}
_RECEIPT = re.compile(r"erasure-[0-9a-f]{16}")


def _here(clinic: str, admin: bool, done: str, receipt: str | None = None) -> str:
    params = {"clinic": clinic} if admin else {}
    params["done"] = done
    if receipt:
        params["receipt"] = receipt
    return f"/directory?{urlencode(params)}"


def _hidden(clinic: str, admin: bool, action: str) -> str:
    field = f'<input type="hidden" name="clinic" value="{esc(clinic)}">' if admin else ""
    return f'<input type="hidden" name="action" value="{esc(action)}">{field}'


def _directory_html(entries: list[Any], consents: dict[str, Any], clinic: str,
                    admin: bool) -> str:
    rows = []
    for entry in entries:
        consent = consents.get(entry.participant)
        state = "—" if entry.role != "client" else (
            "not recorded" if consent is None else "yes" if consent.analysis else "no")
        remove = (f'<form method="post" action="/directory">{_hidden(clinic, admin, "remove")}'
                  f'<input type="hidden" name="participant_id" value="{esc(entry.participant)}">'
                  '<button type="submit">Remove label</button></form>')
        rows.append(f"<tr><td>{esc(entry.label or '(does not open)')}</td>"
                    f"<td>{esc(entry.role)}</td><td><code>{esc(entry.participant[:12])}…"
                    f"</code></td><td>{esc(state)}</td><td>{remove}</td></tr>")
    table = ("<table><thead><tr><th>label</th><th>role</th><th>pseudonym</th>"
             "<th>consent to analysis</th><th></th></tr></thead>"
             f"<tbody>{''.join(rows)}</tbody></table>") if rows else \
        '<p class="muted">No labels yet.</p>'
    form = (f'<form method="post" action="/directory" class="filters">'
            f'{_hidden(clinic, admin, "label")}'
            '<label>Participant id<input name="participant_id" required></label>'
            '<label>Role<select name="role"><option>therapist</option><option>client</option>'
            '</select></label><label>Label<input name="label" required maxlength="200">'
            '</label><button type="submit">Set label</button></form>')
    return (f'<section class="card"><h2>Directory</h2>{table}<h3>Set a label</h3>{form}'
            '<p class="muted">Labels are shown only to this clinic and stored encrypted; '
            'reports, analytics and logs keep pseudonyms.</p></section>')


def _consent_html(consents: list[Any], clinic: str, admin: bool) -> str:
    rows = "".join(
        f"<tr><td><code>{esc(c.participant[:12])}…</code></td>"
        f"<td>{'yes' if c.analysis else 'no'}</td><td>{esc(c.recorded_at.isoformat())}</td>"
        f"<td>{esc(c.recorded_by)}</td></tr>" for c in consents)
    table = ("<table><thead><tr><th>client</th><th>analysis</th><th>recorded</th>"
             f"<th>by token</th></tr></thead><tbody>{rows}</tbody></table>") if rows else \
        '<p class="muted">No consent recorded yet.</p>'
    form = (f'<form method="post" action="/directory" class="filters">'
            f'{_hidden(clinic, admin, "consent")}'
            '<label>Client participant id<input name="participant_id" required></label>'
            '<label>Consent to analysis<select name="analysis"><option value="yes">yes'
            '</option><option value="no">no (revoke: erases their sessions)</option>'
            '</select></label><button type="submit">Record</button></form>')
    return (f'<section class="card"><h2>Consent</h2>{table}<h3>Record consent</h3>{form}'
            '<p class="note">Recording <b>no</b> revokes consent and erases every stored '
            'session of this client; the refusal itself is kept.</p></section>')


def _policy_html(policy: Any, clinic: str, admin: bool) -> str:
    checked = " checked" if policy.require_consent else ""
    return (f'<section class="card"><h2>Policy</h2><form method="post" action="/directory" '
            f'class="filters">{_hidden(clinic, admin, "policy")}'
            '<label>Keep reports (days)<input name="retention_days" type="number" min="1" '
            f'value="{policy.retention_days}"></label>'
            '<label>Keep the audit log (days)<input name="audit_retention_days" '
            f'type="number" min="1" value="{policy.audit_retention_days}"></label>'
            '<label>Require consent<input type="checkbox" name="require_consent" '
            f'value="yes"{checked}></label><button type="submit">Save policy</button></form>'
            '<p class="muted">With consent required, the ingest refuses sessions of clients '
            'without recorded consent.</p></section>')


@administers_page
async def directory_page(request: web.Request) -> web.Response:
    clinic = admin_clinic(request)
    admin = viewer(request).clinic is None
    store = request.config_dict[STORE]
    entries, consents, policy = await asyncio.to_thread(
        lambda: (store.list_labels(clinic), store.list_consents(clinic),
                 store.get_policy(clinic)))
    done = DONE.get(request.query.get("done", ""))
    receipt = request.query.get("receipt", "")
    if done and _RECEIPT.fullmatch(receipt):
        done += f" Erasure receipt: {receipt}."
    notice = f'<p class="note">{esc(done)}</p>' if done else ""
    audit = "/audit" + (f"?{urlencode({'clinic': clinic})}" if admin else "")
    body = (f"<h1>Clinic {esc(clinic)}</h1>{notice}"
            f'<p><a href="{esc(audit)}">Audit log</a> · <a href="/sessions">Sessions</a></p>'
            f"{_directory_html(entries, {c.participant: c for c in consents}, clinic, admin)}"
            f"{_consent_html(consents, clinic, admin)}{_policy_html(policy, clinic, admin)}")
    who = f"admin, clinic {clinic}" if admin else f"clinic admin of {clinic}"
    return page("Directory", body, who=who, scope=viewer(request).scope)


def _days(form: Any, name: str) -> int:
    text = str(form.get(name, "")).strip()
    try:
        return int(text)
    except ValueError:
        raise ValidationError(name, "must be a whole number of days") from None


@administers_page
async def directory_post(request: web.Request) -> web.StreamResponse:
    if not same_origin(request):
        log.info("refused a cross-site POST /directory")
        raise ApiError(403, "origin: send this form from this site's own page")
    form = await request.post()
    seen = viewer(request)
    if seen.clinic is None and "clinic" not in request.query and "clinic" in form:
        clinic = str(form["clinic"])  # an admin's form names its clinic in a hidden field
        if not clinic:
            raise ValidationError("clinic", "an admin token must name the clinic")
    else:
        clinic = admin_clinic(request)
    store = request.config_dict[STORE]
    action = str(form.get("action", ""))
    participant = str(form.get("participant_id", "")).strip()
    if action in ("label", "remove", "consent") and not participant:
        raise ValidationError("participant_id", "is required")
    if action == "label":
        role, label = check_role(str(form.get("role", ""))), check_label(form.get("label"))
        await asyncio.to_thread(store.set_label, clinic, participant, role, label,
                                seen.token_id)
        done, receipt = "label", None
    elif action == "remove":
        await asyncio.to_thread(store.delete_label, clinic, participant)
        done, receipt = "remove", None
    elif action == "consent":
        answer = str(form.get("analysis", ""))
        if answer not in ("yes", "no"):
            raise ValidationError("analysis", "must be yes or no")
        _, erased = await asyncio.to_thread(
            lambda: store.record_consent(clinic, participant, answer == "yes",
                                         token_id=seen.token_id, scope=seen.scope))
        done, receipt = ("consent", None) if erased is None else ("revoke", erased.receipt)
    elif action == "policy":
        changes = parse_policy({
            "retention_days": _days(form, "retention_days"),
            "audit_retention_days": _days(form, "audit_retention_days"),
            "require_consent": form.get("require_consent") == "yes"})
        await asyncio.to_thread(lambda: store.set_policy(clinic, seen.token_id, **changes))
        done, receipt = "policy", None
    else:
        raise ValidationError("action", f"must be one of {', '.join(FORM_ACTIONS)}")
    location = _here(clinic, seen.clinic is None, done, receipt)
    return web.Response(status=303, headers={"Location": location})


def add_directory_page(app: web.Application) -> None:
    app.router.add_get("/directory", directory_page)
    app.router.add_post("/directory", directory_post)
