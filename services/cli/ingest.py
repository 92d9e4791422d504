"""``rapport ingest``: serve the ingest API (issue 4; services/ingest) until interrupted.

Publishes to ``rapport.events`` (and ``rapport.events.dlq``) on ``--broker``; checks bearer
tokens against the database of ``--db-url``, else ``RAPPORT_DB_URL``, else the default SQLite
file in the data directory. Prints ``ingest: http://HOST:PORT`` as the last line of standard
output once listening (``--port 0`` picks a free port).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from models.errors import ConfigError, ValidationError
from services.cli.arguments import add_music_gate
from services.cli.tokens import add_db_url, open_store
from services.settings import INGEST_VARIABLES, VAD_BACKENDS, parse_origins

if TYPE_CHECKING:
    from services.store import ReportStore

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="serve the ingest API (events over HTTP/WebSocket, WebRTC audio, join page)",
        description="Accept wire-v1 events (POST /v1/events, WebSocket /v1/stream) and "
                    "WebRTC audio (offers under /v1/sessions/…, the /join page), and publish "
                    "voice activity to rapport.events on --broker. Audio never leaves this "
                    "process. Tokens: `rapport tokens create --clinic C --scope ingest`.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8081,
                        help="port; 0 picks a free one (default: %(default)s)")
    parser.add_argument("--broker", required=True, metavar="URL",
                        help="Kafka bootstrap servers, host:port[,...] (kafka:// allowed)")
    parser.add_argument("--batch-ms", type=int, default=1000,
                        help="activity batch length from WebRTC (default: %(default)s)")
    parser.add_argument("--max-body-bytes", type=int, default=1024 * 1024,
                        help="largest POST /v1/events body and WebSocket message "
                             "(default: %(default)s)")
    parser.add_argument("--jitter-hold-ms", type=int, default=200, metavar="MS",
                        help="levels mode: wait this long after a batch's end for late or "
                             "reordered RTP packets before publishing it; raise it on jittery "
                             "networks or overloaded senders (default: %(default)s)")
    parser.add_argument("--ice-server", action="append", default=[], metavar="URL",
                        help="STUN/TURN server for WebRTC (repeatable; default: none)")
    limits = parser.add_argument_group(
        "per-token limits (429 with Retry-After beyond them; docs/ingest.md)")
    env = "(default: $RAPPORT_INGEST_{}, else {})"
    limits.add_argument("--max-open-sessions-per-token", type=int, metavar="N",
                        help="sessions a token may have started and not ended (idle ones "
                             "stop counting after --session-idle-s) "
                        + env.format("MAX_OPEN_SESSIONS_PER_TOKEN", 200))
    limits.add_argument("--events-per-s-per-token", type=float, metavar="R",
                        help="sustained events per second per token "
                        + env.format("EVENTS_PER_S_PER_TOKEN", 2000))
    limits.add_argument("--event-burst-per-token", type=int, metavar="N",
                        help="events a token may send at once above the rate; at least the "
                             "10000 events of one request "
                        + env.format("EVENT_BURST_PER_TOKEN", 10000))
    limits.add_argument("--session-idle-s", type=float, metavar="S",
                        help="an open session without events this long stops counting "
                        + env.format("SESSION_IDLE_S", "300, the workers' idle timeout"))
    parser.add_argument("--body-timeout-s", type=float, metavar="S",
                        help="a request body must arrive within this, else 408 "
                        + env.format("BODY_TIMEOUT_S", 30))
    add_vad_backend(parser)
    add_cors_origin(parser)
    add_db_url(parser)
    parser.set_defaults(handler=run)


def add_cors_origin(parser: argparse.ArgumentParser) -> None:
    """``--cors-origin``: page origins allowed to use the SDK's routes (services/cors.py);
    the flags replace ``RAPPORT_CORS_ORIGINS``."""
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="a page origin (https://app.example.com) allowed to load the "
                             "SDK, post events and read the coach stream; repeat or give a "
                             "comma list (default: $RAPPORT_CORS_ORIGINS, else none: same "
                             "origin only)")


def sdk_options(args: argparse.Namespace) -> dict[str, Any]:
    """IngestConfig's SDK fields (issue 18): ``RAPPORT_CORS_ORIGINS``, ``RAPPORT_SDK_DIR``,
    ``RAPPORT_COACH``; ``--cors-origin`` beats the environment."""
    options: dict[str, Any] = args.config.sdk_overrides
    flags = getattr(args, "cors_origin", None) or []
    if flags:
        options["cors_origins"] = parse_origins(flags, "--cors-origin")
    return options


def add_vad_backend(parser: argparse.ArgumentParser) -> None:
    """``--vad-backend``: read by services/cli/__init__.py into ``args.config.vad_backend``
    (flag > ``RAPPORT_VAD_BACKEND`` > ``auto``)."""
    parser.add_argument("--vad-backend", choices=VAD_BACKENDS, default=None,
                        help="VAD of WebRTC audio mode: auto (the default: silero when its "
                             "extra is installed, else rapport, with a WARNING saying so), "
                             "silero (the Silero model's own decisions, trimmed, or Rapport's "
                             "head over its state, probability and band levels; needs pip "
                             "install 'rapport[silero]' "
                             "&& pip install --no-deps silero-vad; without it the command "
                             "stops) or rapport (Rapport's own VAD, always available) "
                             "(default: $RAPPORT_VAD_BACKEND, else auto)")
    add_music_gate(parser, "--vad-music-gate")


def ingest_limits(args: argparse.Namespace) -> dict[str, Any]:
    """The per-token limits and body timeout: flag > ``RAPPORT_INGEST_*`` > default."""
    limits: dict[str, Any] = args.config.ingest_overrides
    for name in INGEST_VARIABLES:
        if getattr(args, name, None) is not None:
            limits[name] = getattr(args, name)
    return limits


async def serve(store: ReportStore, args: argparse.Namespace) -> None:
    # The server's imports (aiohttp, aiortc, the VAD) are here, not at module level: every
    # `rapport` command imports this module to register its arguments.
    from aiohttp import web

    from services.health import Check, database_problem
    from services.ingest import IngestConfig, KafkaPublisher, create_app
    from services.web import server_options, start_site
    from streams.broker_probe import BrokerProbe, bootstrap_servers

    config = IngestConfig(max_body_bytes=args.max_body_bytes,
                          max_message_bytes=args.max_body_bytes, batch_ms=args.batch_ms,
                          hold_ms=args.jitter_hold_ms,
                          ice_servers=tuple(args.ice_server),
                          vad_backend=args.config.vad_backend,
                          vad_music_gate=args.config.vad_music_gate,
                          **ingest_limits(args), **sdk_options(args))
    publisher = KafkaPublisher(bootstrap_servers(args.broker), security=args.config.kafka)
    probe = BrokerProbe(bootstrap_servers(args.broker), args.config.kafka)
    checks: list[tuple[str, Check]] = [("database", partial(database_problem, store)),
                                       ("broker", probe.check)]
    runner = web.AppRunner(create_app(publisher, store, config, checks=checks,
                                      pseudonymize=store.pseudonymize),
                           access_log=None, **server_options())
    await runner.setup()
    try:
        bound = await start_site(runner, args.host, args.port)
        print(f"ingest: http://{args.host}:{bound}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
        await probe.close()


def run(args: argparse.Namespace) -> int:
    from services.ingest import PublishError
    from services.store import StoreError

    if not 0 <= args.port <= 65535:
        print("rapport ingest: --port must be 0..65535", file=sys.stderr)
        return 2
    if args.batch_ms < 20 or args.batch_ms > 60_000 or args.max_body_bytes < 1024:
        print("rapport ingest: --batch-ms must be 20..60000 and --max-body-bytes >= 1024",
              file=sys.stderr)
        return 2
    # librosa (the VAD of audio mode) caches compiled code here; the default may be read-only.
    os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(args.config.data_dir) / "numba-cache"))
    try:
        store = open_store(args)
    except (StoreError, ValidationError) as error:
        print(f"rapport ingest: {error}", file=sys.stderr)
        return 1
    try:
        asyncio.run(serve(store, args))
    except ConfigError as error:  # e.g. --vad-backend silero without the extra
        print(f"rapport ingest: {error}", file=sys.stderr)
        return 2
    except PublishError as error:
        print(f"rapport ingest: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"rapport ingest: cannot listen on {args.host}:{args.port}: {error.strerror}",
              file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0
