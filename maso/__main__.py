"""``python -m maso``: the ``maso`` command (see ``python -m maso --help``)."""

import sys

from maso.cli import main

if __name__ == "__main__":
    sys.exit(main())
