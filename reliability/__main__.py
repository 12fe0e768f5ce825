"""``python -m reliability`` (from the repository root): run the scenarios, write the JSON report."""

import sys

from ._bench import main

if __name__ == "__main__":
    sys.exit(main())
