"""``python -m msk``: the same as the ``msk`` command."""

import sys

from .cli import main

sys.exit(main())
