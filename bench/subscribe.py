"""`metastream bench subscribe`, as a script: arguments are passed on."""

import sys

from metastream.cli import main

sys.exit(main(["bench", "subscribe", *sys.argv[1:]]))
