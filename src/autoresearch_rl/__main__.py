"""`python -m autoresearch_rl` is `arl`."""

import sys

from autoresearch_rl.cli import main

sys.exit(main())
