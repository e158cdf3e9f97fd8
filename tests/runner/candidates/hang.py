"""Ignores the budget and leaves a child behind: the runner must kill the whole process group."""

import subprocess
import time
from pathlib import Path

child = subprocess.Popen(["sleep", "600"])
Path("child.pid").write_text(str(child.pid))
print("step 00000 | elapsed 0.00s | progress 0.0% | loss 5.000000 | tokens 0 | tok/s 0", flush=True)
while True:
    time.sleep(1)
