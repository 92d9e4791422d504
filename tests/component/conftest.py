"""Component tier: the adapters in ``services/`` exercised in-process (the ``rapport`` CLI
now; Faust ``test_context``, the aiohttp test client and in-process aiortc peers as they land).

Run this tier alone with ``.venv/bin/pytest tests/component``.
"""
