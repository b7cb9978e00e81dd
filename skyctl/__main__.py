"""``python -m skyctl``: skyctl without the console script installed."""

from __future__ import annotations

import sys

from skyctl.main import main

sys.exit(main())
