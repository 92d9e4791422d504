"""The browser SDK's own unit tests (clients/js/test, Node's built-in ``node:test``): sampling,
batching, reconnection and resend, clock mapping, the bounded buffer and the coach (issue 18).

They run on fakes of the browser and the ingest, so they need only Node 18+. Skipped with the
reason when ``node`` is missing, except with ``CI=true``, where that is a failure."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "clients" / "js"


def test_sdk_node_tests_pass() -> None:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is missing (apt-get install -y nodejs); required with CI=true")
        pytest.skip("node is missing: apt-get install -y nodejs to run clients/js/test")
    files = sorted(str(p.relative_to(SDK)) for p in (SDK / "test").glob("*.test.js"))
    assert files, "no SDK tests found"
    result = subprocess.run([node, "--test", *files], cwd=SDK, capture_output=True, text=True,
                            timeout=300, env={**os.environ, "NODE_NO_WARNINGS": "1"})
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout
