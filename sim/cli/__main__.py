"""``python -m sim.cli``: the same as the ``pbrsim`` command."""

import sys

from sim.cli import main

sys.exit(main())
