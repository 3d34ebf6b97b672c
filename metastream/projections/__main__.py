"""``python -m metastream.projections``: the projector, configured from the environment.

What ``metastream up`` and a consumer start: it needs nothing of the CLI
beyond the settings.
"""

import sys

from metastream.cli.projector import main

sys.exit(main())
