"""``python -m streams.cli`` is the ``kflow`` command."""

import sys

from streams.cli._main import main

sys.exit(main())
