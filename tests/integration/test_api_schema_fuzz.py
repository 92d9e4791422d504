"""schemathesis against the running job's ``/openapi.json`` (issue 16): every request the
description allows, and many it does not, must get an answer the description declares, with
no 5xx, no schema mismatch, and every schema-valid request accepted.

The run is time-boxed by its example count (deterministic generation, so CI sees the same
requests every time): ``RAPPORT_API_FUZZ_EXAMPLES`` per operation and phase, 25 by default;
``make api-fuzz`` runs it with 1,000. It fails on a report API whose description promises less
than its handlers check (a schema-valid ``clinic=`` answered 400), and on a 405 without the
``Allow`` header RFC 9110 requires.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from harness import ROOT, free_port

pytestmark = pytest.mark.slow

CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = int(os.environ.get("RAPPORT_API_FUZZ_EXAMPLES", "25"))


def _schemathesis() -> str:
    found = shutil.which("st", path=str(Path(sys.executable).parent))
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("schemathesis is not installed (pyproject.toml extra dev)")
        pytest.skip("schemathesis is not installed: pip install -e '.[dev]'")
    return found


def _sessions(port: int, token: str) -> list[dict[str, object]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/sessions",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        sessions: list[dict[str, object]] = orjson.loads(answer.read())["sessions"]
        return sessions


# Routes a `reports` token may not call (403 whatever the request): a clinic's records and
# its audit log are for clinic admins (issue 19). The fuzz still sends them every request.
CLINIC_ADMIN_ONLY = frozenset({
    "GET /v1/audit", "GET /v1/directory", "PUT /v1/directory/{participant_id}",
    "DELETE /v1/directory/{participant_id}", "GET /v1/clients/{participant_id}/consent",
    "PUT /v1/clients/{participant_id}/consent", "GET /v1/clinic/policy",
    "PUT /v1/clinic/policy", "DELETE /v1/clients/{participant_id}",
    "DELETE /v1/therapists/{participant_id}"})


def _refused_everywhere(text: str) -> set[str]:
    """The operations schemathesis saw answer only 401/403 (its "Authentication failed"
    warning lists them under "403 Forbidden (n operations):" / "401 …")."""
    refused: set[str] = set()
    listing = False
    for line in text.splitlines():
        stripped = line.strip()
        if re.match(r"^40[13] \w+ \(\d+ operations?\):$", stripped):
            listing = True
        elif listing and stripped.startswith("- "):
            refused.add(stripped[2:])
        else:
            listing = False
    return refused


def _fuzz(st: str, port: int, token: str, tmp_path: Path, name: str,
          forbidden: frozenset[str] = frozenset()) -> None:
    report = tmp_path / f"{name}.txt"
    with report.open("w") as out:
        done = subprocess.run(
            [st, "--config-file", str(CONFIG), "run", f"http://127.0.0.1:{port}/openapi.json",
             "-H", f"Authorization: Bearer {token}", "--checks", "all",
             "--max-examples", str(EXAMPLES), "--generation-deterministic",
             "--request-timeout", "20", "--no-color"],
            cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, timeout=600, check=False)
    text = report.read_text()
    assert done.returncode == 0, f"schemathesis ({name} token) found failures:\n{text[-6000:]}"
    # Not vacuous: the operations were exercised with a token that authenticates (except
    # those its scope may not call at all).
    assert _refused_everywhere(text) <= forbidden, text[-3000:]
    generated = re.search(r"(\d+) generated", text)
    assert generated is not None and int(generated.group(1)) >= 5 * EXAMPLES, text[-3000:]


def test_report_api_matches_its_openapi_description(tmp_path: Path) -> None:
    st = _schemathesis()
    port = free_port()
    env = {**os.environ, "RAPPORT_DATA_DIR": str(tmp_path / "data")}
    env.pop("RAPPORT_DB_URL", None)
    log_path = tmp_path / "run.err"
    with log_path.open("w") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "run", "--port", str(port), "--sessions", "3",
             "--minutes", "2", "--speed", "20", "--reports", str(tmp_path / "reports.jsonl")],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while "admin token:" not in log_path.read_text():
            assert run.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "rapport run did not start its server"
            time.sleep(0.3)
        admin = re.search(r"admin token: (\S+)", log_path.read_text()).group(1)  # type: ignore[union-attr]
        # Stored reports, so that report, timeline and trend answer 200 too, not only 404.
        deadline = time.monotonic() + 120
        while len(sessions := _sessions(port, admin)) < 3:
            assert time.monotonic() < deadline, "no stored reports"
            time.sleep(0.5)
        clinic = str(sessions[0]["clinic_id"])
        clinic_token = subprocess.run(
            [sys.executable, "-m", "services.cli", "tokens", "create", "--clinic", clinic,
             "--scope", "reports"], cwd=ROOT, env=env, capture_output=True, text=True,
            check=True).stdout.strip().splitlines()[-1]
        _fuzz(st, port, admin, tmp_path, "admin")
        _fuzz(st, port, clinic_token, tmp_path, "clinic", CLINIC_ADMIN_ONLY)
        assert "Traceback" not in log_path.read_text()
    finally:
        run.terminate()
        run.wait(timeout=60)
