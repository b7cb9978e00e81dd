"""``python -m skybroker`` is the ``skybroker`` command."""

import sys

from skybroker.main import main

sys.exit(main())
