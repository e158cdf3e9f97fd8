"""Disk filler: writes 16 MB files into its workspace and its temp directory, up to 1 GB, as fast as it can.

A file-size limit stops the first file (SIGXFSZ); a workspace disk limit stops the total. Either
way the runner records RESOURCE_LIMIT and the filler is killed.
"""

import os
import tempfile
import time
from pathlib import Path

chunk = os.urandom(2**20)
targets = [Path("."), Path(tempfile.gettempdir())]
for i in range(64):
    with open(targets[i % 2] / f"fill-{i:03d}.bin", "wb") as f:
        for _ in range(16):
            f.write(chunk)
            f.flush()
            time.sleep(0.002)
time.sleep(60)
