"""Memory hog: grabs 16 MB more every few milliseconds and touches every page, up to 4 GB.

The runner must kill it at its memory limit and record RESOURCE_LIMIT (not CRASHED, and long
before the machine starts swapping or the kernel's OOM killer picks a victim).
"""

import time

hoard = []
for _ in range(256):
    hoard.append(bytearray(16 * 2**20))  # zero-filled: every page is touched
    time.sleep(0.005)
time.sleep(60)
