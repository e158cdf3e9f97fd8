"""The controller core: typed events, a pure state reducer, small protocols and one loop.

A campaign is an append-only log of events (`events.py`); its state is the fold of that log
(`state.py`), so resume, replay and tests all read state the same way. The loop (`loop.py`) asks a
`Proposer`, runs the candidate on an `Executor`, lets a `Decider` judge it, asks a `Stopper` when to
end and appends every fact to a `Store`. Nothing here does I/O of its own: an in-memory store runs a
simulated campaign at thousands of decisions per second.
"""
