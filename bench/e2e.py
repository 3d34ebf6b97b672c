"""`metastream bench e2e`, as a script: arguments are passed on."""

import sys

from metastream.cli import main

sys.exit(main(["bench", "e2e", *sys.argv[1:]]))
