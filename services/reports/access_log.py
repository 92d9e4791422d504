"""The report service's access log, without participant ids (issue 19).

aiohttp's default access log writes the request line, and paths such as
``/v1/directory/{participant_id}`` or ``/v1/clients/{participant_id}/consent`` carry the
platform's participant ids in clear, which must never reach a log (docs/ingest.md,
"Participant pseudonyms"). :class:`RouteAccessLogger` logs the matched route's template
instead (``PUT /v1/directory/{participant_id} 201 3.2 ms``), and no query string (filters may
name a therapist or carry a token); an unmatched path is logged as ``(no route)``.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger


def route_of(request: web.BaseRequest) -> str:
    """The route template of ``request``, or ``(no route)``."""
    match = getattr(request, "match_info", None)
    if match is None or match.http_exception is not None:
        return "(no route)"
    resource = match.route.resource
    return resource.canonical if resource is not None else "(no route)"


class RouteAccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse,
            time: float) -> None:
        self.logger.info("%s %s %d %.1f ms", request.method, route_of(request),
                         response.status, time * 1000)
