import sys

from metastream.cli import main

sys.exit(main())
