"""Bearer-token authentication shared by every Rapport web surface (issues 4, 5 and 6).

One aiohttp application can host the report API, the HTML report pages, the ingest API and
the health and metrics routes on one port (``rapport run --port``); each route declares what
it needs and :func:`auth_middleware` enforces it:

- ``@requires("reports", "admin")``: a token of one of these scopes (made by
  ``rapport tokens create``, stored hashed; services/store/tokens.py). No token, or an unknown
  or revoked one: ``401`` with ``WWW-Authenticate: Bearer``; a token of another scope:
  ``403``. Tenancy is the handlers' job: :class:`Viewer` carries the token's clinic (None for
  ``admin``), and the handlers pass it to every store query, so another clinic's ids answer
  ``404`` exactly like missing ones (never ``403``: ids cannot be probed).
- ``@requires(..., page=True)``: an HTML page; the token may also come from the HttpOnly
  ``rapport_token`` cookie that ``/signin`` sets, and failures are rendered as HTML by the
  application's :data:`ERROR_PAGE` renderer (the sign-in form for ``401``).
- ``@public``: no token (``/openapi.json``, ``/healthz``). Routes that declare nothing are
  left to their handlers (parts that check tokens themselves, such as the ingest routes of
  services/ingest/access.py, work unchanged on a shared application). A path that matches no
  route under ``/v1/`` needs a valid token of any scope (``401`` before ``404``, so unknown
  paths reveal nothing).

:func:`error_middleware` turns :class:`ApiError`, :class:`~models.errors.ValidationError`
(``400`` naming the field), :class:`~services.store.StoreError` (``503``) and aiohttp's HTTP
errors into JSON ``{"error": "<field>: <reason>"}`` (or an HTML page on page routes).
:func:`install` adds both middlewares to an application once, whichever part calls it first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from models.errors import ValidationError
from services.store import StoreError, TokenInfo

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Callable[..., Any])
COOKIE = "rapport_token"
PROTECTED_PREFIX = "/v1/"
_ACCESS = "_rapport_access"


class TokenVerifier(Protocol):
    """What authentication needs from the store (:class:`~services.store.ReportStore`)."""

    def verify_token(self, token: str) -> TokenInfo | None: ...


ErrorPage = Callable[[web.Request, int, str], web.Response]
TOKENS = web.AppKey("tokens", TokenVerifier)
ERROR_PAGE: web.AppKey[ErrorPage] = web.AppKey("error_page")


@dataclass(frozen=True, slots=True)
class Access:
    """A route's requirement: ``scopes`` None means public; ``page`` marks an HTML page."""

    scopes: frozenset[str] | None
    page: bool = False


PUBLIC = Access(None)
ANY_TOKEN = Access(frozenset({"ingest", "reports", "admin", "session", "clinic-admin",
                              "therapist"}))


def requires(*scopes: str, page: bool = False) -> Callable[[H], H]:
    """Mark a handler as needing a token of one of ``scopes``."""
    if not scopes:
        raise ValueError("requires() needs at least one scope")

    def mark(handler: H) -> H:
        setattr(handler, _ACCESS, Access(frozenset(scopes), page))
        return handler

    return mark


def public(handler: H) -> H:
    """Mark a handler as needing no token."""
    setattr(handler, _ACCESS, PUBLIC)
    return handler


def access_of(request: web.Request) -> Access:
    """What the matched route needs (see the module docstring for undeclared routes)."""
    if request.match_info.http_exception is not None:  # no route: 404 or 405
        return ANY_TOKEN if request.path.startswith(PROTECTED_PREFIX) else PUBLIC
    declared = getattr(request.match_info.route.handler, _ACCESS, None)
    return declared if isinstance(declared, Access) else PUBLIC


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking: ``clinic`` is None for an admin token (every clinic). A session token
    (issue 18) also names its ``session_id`` and ``role``, and ``parent_id``, the token it
    was minted from. A session or ``therapist`` token (issue 19) names its ``participant``
    (pseudonym): a therapist token sees only that therapist's sessions."""

    token_id: str
    clinic: str | None
    scope: str
    session_id: str | None = None
    role: str | None = None
    parent_id: str | None = None
    participant: str | None = None

    @classmethod
    def of(cls, token: TokenInfo) -> Viewer:
        return cls(token.id, None if token.scope == "admin" else token.clinic_id, token.scope,
                   token.session_id, token.role, token.parent_id, token.participant)


VIEWER = web.RequestKey("viewer", Viewer)


def viewer(request: web.Request) -> Viewer:
    return request[VIEWER]


class ApiError(Exception):
    """An error answer: ``status`` with the JSON body ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def request_token(request: web.Request, access: Access) -> str | None:
    """The bearer header, else (pages only) the sign-in cookie. The JSON API ignores the
    cookie, so a browser session can never be used to call it across sites."""
    token = bearer_token(request)
    if token is None and access.page:
        token = request.cookies.get(COOKIE) or None
    return token


async def verify(request: web.Request, token: str) -> TokenInfo | None:
    """The token's record if it is known and not revoked (the store runs in a thread)."""
    return await asyncio.to_thread(request.config_dict[TOKENS].verify_token, token)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    access = access_of(request)
    if access.scopes is None:
        return await handler(request)
    token = request_token(request, access)
    if token is None:
        raise ApiError(401, "authorization: missing bearer token")
    info = await verify(request, token)
    if info is None:
        log.info("rejected an unknown or revoked token on %s", request.path)
        raise ApiError(401, "authorization: unknown or revoked token")
    if info.scope not in access.scopes:
        what = " or ".join(sorted(access.scopes))
        raise ApiError(403, f"authorization: this needs a token of scope {what}, "
                            f"not {info.scope}")
    request[VIEWER] = Viewer.of(info)
    return await handler(request)


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status,
                        content_type="application/json")


def _error_response(request: web.Request, status: int, message: str,
                    field: str | None = None) -> web.Response:
    page = request.config_dict.get(ERROR_PAGE)
    if page is not None and access_of(request).page:
        response = page(request, status, message)
    else:
        body: dict[str, Any] = {"error": message}
        if field is not None:
            body["field"] = field
        response = json_response(body, status=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="rapport"'
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return _error_response(request, error.status, error.message)
    except ValidationError as error:
        return _error_response(request, 400, str(error), error.field)
    except StoreError:
        log.exception("report store failed on %s", request.path)
        return _error_response(request, 503, "store: the report database is unavailable")
    except web.HTTPException as error:
        if error.status < 400:
            raise
        response = _error_response(request, error.status,
                                   f"{request.path}: {error.reason.lower()}")
        # RFC 9110 §15.5.6: a 405 lists the methods the resource supports.
        if "Allow" in error.headers:
            response.headers["Allow"] = error.headers["Allow"]
        return response
    except ConnectionResetError as error:
        # The client went away mid-request (reading its body, or writing a streamed answer;
        # aiohttp's ClientConnectionResetError is one): routine on the internet, not a server
        # error, so no ERROR traceback (issue 16 finding 7). A reset of some other connection
        # (a backend's) while the client is still there is still an error.
        transport = request.transport
        if transport is not None and not transport.is_closing():
            raise
        log.info("client went away during %s %s (%s)", request.method, request.path,
                 error or type(error).__name__)
        return web.Response(status=499)  # nginx's "client closed request"; never sent


# How often an open stream (ingest WebSocket, live SSE) checks that its token is still valid:
# revoking a token ends its open connections within about this long (issue 16 finding 3).
REVALIDATE_S = web.AppKey("revalidate_s", float)
DEFAULT_REVALIDATE_S = 2.0


class Revalidation:
    """Re-checks an open stream's token at most every ``interval_s`` seconds."""

    def __init__(self, tokens: TokenVerifier, token: str, interval_s: float) -> None:
        self._tokens = tokens
        self._token = token
        self.interval_s = interval_s
        self._checked = time.monotonic()

    async def revoked(self) -> bool:
        """Whether the token is no longer valid (checked when the interval has passed)."""
        now = time.monotonic()
        if now - self._checked < self.interval_s:
            return False
        self._checked = now
        info = await asyncio.to_thread(self._tokens.verify_token, self._token)
        return info is None

    @classmethod
    def of(cls, request: web.Request, token: str) -> Revalidation:
        return cls(request.config_dict[TOKENS], token,
                   request.config_dict.get(REVALIDATE_S, DEFAULT_REVALIDATE_S))


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every answer: ``nosniff`` (a JSON or CSV body is never run as a page), and
    ``no-store`` unless the handler chose a cache policy (reports, tokens in URLs and error
    pages must not stay in a shared or browser cache)."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Cache-Control", "no-store")


def same_origin(request: web.Request) -> bool:
    """Whether a browser sent ``request`` from this site (for cookie routes: login CSRF).

    A browser names the page's origin in ``Origin`` on every cross-site POST (or at least in
    ``Referer``); a request naming another host is refused. One with neither header is not a
    cross-site browser request (curl, a test client) and passes."""
    claimed = request.headers.get("Origin") or request.headers.get("Referer")
    if not claimed:
        return True
    if claimed == "null":  # sandboxed frames, file: pages
        return False
    return urlsplit(claimed).netloc.lower() == request.host.lower()


def install(app: web.Application, tokens: TokenVerifier) -> None:
    """Add the error and auth middlewares to ``app`` (once), the security headers and the
    token verifier."""
    for middleware in (error_middleware, auth_middleware):
        if middleware not in app.middlewares:
            app.middlewares.append(middleware)
    if security_headers not in app.on_response_prepare:
        app.on_response_prepare.append(security_headers)
    if TOKENS not in app:
        app[TOKENS] = tokens
