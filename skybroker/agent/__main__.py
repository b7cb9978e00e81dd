"""``python -m skybroker.agent`` is ``skybroker agent`` without the server's imports."""

import sys

from skybroker.agent.cli import main

sys.exit(main())
