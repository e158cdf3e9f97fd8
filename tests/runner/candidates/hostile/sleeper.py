"""Sleeper past the deadline: ignores SIGTERM, and leaves a double-forked grandchild in a new session.

The grandchild is out of the process group, so a plain killpg would miss it. The runner must kill
everything at the deadline and record TIMED_OUT. Both pids are written to the workspace.
"""

import os
import signal
import time
from pathlib import Path

signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:  # child: new session, then fork again and let the middle process die
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        Path("escapee.pid").write_text(str(os.getpid()))
        while True:
            time.sleep(1)
    os._exit(0)
Path("sleeper.pid").write_text(str(os.getpid()))
print("step 00000 | elapsed 0.00s | progress 0.0% | loss 5.000000 | tokens 0 | tok/s 0", flush=True)
while True:
    time.sleep(1)
