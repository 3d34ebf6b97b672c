"""`metastream bench producer`, as a script: arguments are passed on."""

import sys

from metastream.cli import main

sys.exit(main(["bench", "producer", *sys.argv[1:]]))
