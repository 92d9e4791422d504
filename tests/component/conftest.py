"""Component tier: the adapters in ``services/`` exercised in-process (the ``rapport`` CLI
now; Faust ``test_context``, the aiohttp test client and in-process aiortc peers as they land).

Run this tier alone with ``.venv/bin/pytest tests/component``.
"""

from __future__ import annotations

import importlib.util
import os

import pytest


@pytest.fixture(scope="module")
def silero_backend():  # type: ignore[no-untyped-def]
    """The silero backend (services/ingest/vad_backend.py ``VadBackend("silero")``); skipped
    without its extra on a laptop, a failure in CI, where ``make setup`` installs it."""
    if not all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime", "silero_vad")):
        if os.environ.get("CI") == "true":
            pytest.fail("silero backend missing in CI: make setup installs it")
        pytest.skip("silero extra not installed: the default is then Rapport's own VAD")
    from services.ingest.vad_backend import VadBackend

    return VadBackend("silero")
