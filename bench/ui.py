"""`metastream bench ui`, as a script: arguments are passed on."""

import sys

from metastream.cli import main

sys.exit(main(["bench", "ui", *sys.argv[1:]]))
