import sys

from ray_nasrank.cli import main

sys.exit(main())
