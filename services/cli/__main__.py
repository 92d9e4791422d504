from __future__ import annotations

import sys

from services.cli import main

sys.exit(main())
