"""Run vidrestore from a checkout: ``python cli.py in.mp4 out.mp4``."""

import sys

from vidrestore.cli import main

if __name__ == "__main__":
    sys.exit(main())
