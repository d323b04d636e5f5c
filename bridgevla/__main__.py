"""``python -m bridgevla ...`` is the ``bridgevla`` console script (bridgevla/scripts/cli.py)."""

import sys

from bridgevla.scripts.cli import main

sys.exit(main())
