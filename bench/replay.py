"""`metastream bench replay`, as a script: arguments are passed on."""

import sys

from metastream.cli import main

sys.exit(main(["bench", "replay", *sys.argv[1:]]))
