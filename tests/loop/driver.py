"""Runs one campaign of the real loop on the synthetic landscape, in its own process (kill-and-resume tests).

    python driver.py RUN_DIR CACHE_DIR AGENT MAX_ITERS      # ARL_KILL_AT=point:n makes it die on the way
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from autoresearch_rl.agent.factory import default_keep_rule, make_proposer
from autoresearch_rl.campaign import Campaign
from autoresearch_rl.loop import LoopConfig, ResearchLoop
from autoresearch_rl.oracle import OracleConfig
from autoresearch_rl.synthetic import SyntheticLandscape
from autoresearch_rl.target import template_source
from autoresearch_rl.target.space import ActionSpace


def main() -> None:
    run_dir, cache_dir, agent, max_iters = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    torch.set_num_threads(1)
    base = template_source()
    with Campaign.open(run_dir, "cpu-smoke", cache_dir) as campaign:
        campaign.executor = SyntheticLandscape(base)
        proposer = make_proposer(agent, base, ActionSpace.for_source(base), seed=7)
        config = LoopConfig(seed=7, keep=default_keep_rule(agent), oracle=OracleConfig(max_iters=max_iters),
                            smoke_check=False)
        decision = ResearchLoop(campaign, proposer, config, base_source=base).run()
    print(decision.reason)


if __name__ == "__main__":
    main()
