"""``python -m metastream.consumer``: the consumer, configured from the environment.

What ``metastream up --detach`` starts: it needs nothing of the CLI beyond
the settings, so a broken or slow-to-import command module elsewhere cannot
keep the stack's consumer from starting.
"""

import sys

from metastream.cli.consumer import main

sys.exit(main())
