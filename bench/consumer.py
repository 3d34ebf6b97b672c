"""`metastream bench consumer`, as a script: arguments are passed on."""

import sys

from metastream.cli import main

sys.exit(main(["bench", "consumer", *sys.argv[1:]]))
