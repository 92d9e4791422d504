"""Every `rapport` command imports services/cli to register all commands' arguments, so that
package must stay light: `rapport analyze FILE` on one 50-minute session is a target under a
second end to end, and importing the web server, the store or Faust cost over a second."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# (aiokafka's client and confluent-kafka load in about 50 ms: the broker helpers keep them.)
HEAVY = ("aiohttp", "aiortc", "sqlalchemy", "alembic", "faust", "librosa", "onnxruntime",
         "cryptography", "numpy")


def test_registering_the_commands_imports_no_server_store_or_streaming_library() -> None:
    probe = ("import sys, services.cli; services.cli.build_parser(); "
             f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == "", f"imported at registration: {done.stdout.strip()}"


def test_constants_copied_to_keep_registration_light_match_their_sources() -> None:
    from services.cli import reports, tokens
    from services.reports.consumer import GROUP_ID
    from services.store.tokens import SCOPES, SESSION_SCOPE

    assert tokens.SCOPES == SCOPES and tokens.SESSION_SCOPE == SESSION_SCOPE
    assert reports.GROUP_ID == GROUP_ID


def test_cli_token_id_copied_to_keep_registration_light_matches_its_source() -> None:
    from services.cli import directory
    from services.store.audit import CLI_TOKEN_ID

    assert directory.CLI_TOKEN_ID == CLI_TOKEN_ID
