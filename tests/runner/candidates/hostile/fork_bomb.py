"""Fork bomb: every process forks again, twelve generations deep (up to 4,096 processes), then sleeps.

Bounded on purpose so that a broken containment cannot take the test machine down; the runner must
stop it far earlier, kill every process of it and record RESOURCE_LIMIT.
"""

import os
import time
from pathlib import Path

Path("bomb.pid").write_text(str(os.getpid()))
refused = 0
for generation in range(12):
    try:
        os.fork()
    except OSError:  # the kernel said no: pids cgroup or RLIMIT_NPROC
        refused += 1
        break
time.sleep(60)
