"""The research loop lives in `core/loop.py`; this name is where version 0.1's loop was imported from.

    from autoresearch_rl.loop import Loop, Campaign      # = autoresearch_rl.core.loop

A train.py campaign is built by `real_campaign.real_campaign`; a simulated one by `simulate.build_campaign`.
"""

from autoresearch_rl.core.loop import Campaign, Loop

__all__ = ["Campaign", "Loop"]
