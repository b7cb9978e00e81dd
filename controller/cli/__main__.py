"""``python -m controller.cli``: skyctl without the console script installed."""

from __future__ import annotations

import sys

from controller.cli.main import main

sys.exit(main())
