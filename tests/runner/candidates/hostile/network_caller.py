"""Network caller: tries to send data to a listener on localhost (the test writes its port into PORT).

In a sandbox with its own network namespace there is nothing to connect to: it crashes with the
connection error (CRASHED). Without one the call succeeds, and the record says network isolation
was not enforced. It never trains, so a successful call ends as NO_CHECKPOINT.
"""

import socket

PORT = 9  # the test replaces this with its listener's port

with socket.create_connection(("127.0.0.1", PORT), timeout=3) as conn:
    conn.sendall(b"exfiltrated: the candidate reached the network\n")
print("sent data over the network", flush=True)
