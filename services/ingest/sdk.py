"""``GET /sdk/rapport.js`` and ``GET /sdk/rapport.d.ts``: the browser SDK (issue 18, contract §2).

Public (no token): the files ``rapport.js`` (the package's single ES module) and
``rapport.d.ts`` of the SDK directory, by default the repository's ``clients/js``
(``IngestConfig.sdk_dir``). Answers carry an ``ETag`` (a hash of the content; a matching
``If-None-Match`` is ``304``) and ``Cache-Control: public, max-age=300``, so a page load
costs at most one revalidation every five minutes. Cross-origin pages may import the module
when their origin is allowed (services/cors.py). A missing file is ``404``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from services.auth import public
from services.ingest.service import INGEST

log = logging.getLogger(__name__)

DEFAULT_SDK_DIR = Path(__file__).resolve().parents[2] / "clients" / "js"
FILES = {"rapport.js": "text/javascript", "rapport.d.ts": "application/typescript"}
CACHE_CONTROL = "public, max-age=300"


@dataclass(frozen=True, slots=True)
class SdkFile:
    body: bytes
    etag: str
    mtime_ns: int
    size: int


_CACHE: dict[Path, SdkFile] = {}


def _load(path: Path) -> SdkFile | None:
    """The file, read again only when its modification time or size changed."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    cached = _CACHE.get(path)
    if cached is not None and (cached.mtime_ns, cached.size) == (stat.st_mtime_ns,
                                                                 stat.st_size):
        return cached
    body = path.read_bytes()
    loaded = SdkFile(body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"',
                     stat.st_mtime_ns, stat.st_size)
    _CACHE[path] = loaded
    return loaded


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags


@public
async def sdk_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    kind = FILES.get(name)
    if kind is None:
        raise web.HTTPNotFound()
    directory = request.app[INGEST].config.sdk_dir or DEFAULT_SDK_DIR
    found = await asyncio.to_thread(_load, directory / name)
    if found is None:
        log.warning("the SDK file %s is missing from %s", name, directory)
        raise web.HTTPNotFound()
    headers = {"ETag": found.etag, "Cache-Control": CACHE_CONTROL}
    if _matches(request.headers.get("If-None-Match"), found.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=found.body, headers=headers, content_type=kind,
                        charset="utf-8")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/sdk/{name}", sdk_file)
