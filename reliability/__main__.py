"""``python -m reliability`` (from the repository root): the same run as ``ray-nasrank bench reliability``."""

import sys

from ray_nasrank.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "reliability", *sys.argv[1:]]))
