"""``python -m vidrestore``: the ``vidrestore`` command, where pip put its script off the PATH
(``pip install --user`` without ``~/.local/bin`` there, a virtual environment not activated)."""

import sys

from .cli import main

sys.exit(main())
