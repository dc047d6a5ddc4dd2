"""``python -m pytest_batchflow``: the ``batchflow`` command (flaky, history, report)."""

import sys

from .cli import main

sys.exit(main())
