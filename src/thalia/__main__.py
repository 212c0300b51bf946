"""``python -m thalia``: the ``thalia`` command (:func:`thalia.cli.main`)."""

import sys

from thalia.cli import main

if __name__ == "__main__":
    sys.exit(main())
