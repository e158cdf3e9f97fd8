"""File-descriptor hoarder: opens /dev/null until the process runs out of descriptors.

The open-file limit stops it (EMFILE) and the runner records RESOURCE_LIMIT, not CRASHED.
"""

handles = [open("/dev/null") for _ in range(100_000)]
