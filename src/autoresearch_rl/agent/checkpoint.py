"""A learning agent's checkpoint: its state and how far into the ledger it has seen, written atomically.

The ledger is the truth; the checkpoint only saves replaying it. A missing or unreadable file means
"replay everything" (`load_checkpoint` returns 0), never a failed campaign. torch is imported here,
and only when a learning agent saves or loads.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from autoresearch_rl import faults
from autoresearch_rl.agent.factory import RENAMED_PPO
from autoresearch_rl.agent.protocol import Learner, Proposer, Transition

log = logging.getLogger(__name__)


def load_checkpoint(proposer: Learner, path: Path) -> int:
    """Restore `proposer` from `path`; the last experiment id it had seen (0: none, replay the whole ledger)."""
    if not path.is_file():
        return 0
    import torch

    try:  # a checkpoint of the per-action learner from before it was renamed `ppo_edits` is still its own
        saved = torch.load(path, weights_only=True)
        if saved.get("proposer") != proposer.name and (saved.get("proposer"), proposer.name) != RENAMED_PPO:
            raise ValueError(f"checkpoint is for {saved.get('proposer')!r}")
        proposer.load_state_dict(saved["state"])
        return int(saved["last_exp_id"])
    except Exception as exc:  # noqa: BLE001 - a bad checkpoint is rebuilt from the ledger, loudly
        log.warning("agent checkpoint %s is unreadable (%s); rebuilding the agent from the ledger", path, exc)
        return 0


def save_checkpoint(proposer: Learner, path: Path, last_exp_id: int) -> None:
    """Write the learner and the last experiment id it has seen; a kill leaves the old file or the new one."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = {"proposer": proposer.name, "last_exp_id": last_exp_id, "updates": proposer.updates,
               "state": proposer.state_dict()}
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    faults.point("checkpoint_written")
    os.replace(tmp, path)


class ProposerMemory:
    """What a proposer has been told of the ledger, and (for a learner) its checkpoint.

    `restore` loads the checkpoint and replays only the transitions recorded after it; `observe` tells
    the proposer one decided transition; `save` writes the checkpoint when the learner has updated
    since the last save (or when forced, at a stop).
    """

    def __init__(self, proposer: Proposer, path: Path) -> None:
        self.proposer = proposer
        self.path = path
        self.observed_through = 0  # the last experiment id the proposer has seen
        self._saved_updates = -1

    @property
    def learns(self) -> bool:
        return isinstance(self.proposer, Learner)

    def restore(self, transitions: Iterable[Transition]) -> int:
        """Load the checkpoint (if any, and readable), then replay what came after it; how many were replayed."""
        start = load_checkpoint(self.proposer, self.path) if isinstance(self.proposer, Learner) else 0
        replayed = 0
        for t in transitions:
            if t.exp_id > start:
                self.proposer.observe(t)
                replayed += 1
            self.observed_through = max(self.observed_through, t.exp_id)
        self._saved_updates = getattr(self.proposer, "updates", -1)
        return replayed

    def observe(self, transition: Transition) -> None:
        self.proposer.observe(transition)
        self.observed_through = max(self.observed_through, transition.exp_id)

    def save(self, force: bool = False) -> bool:
        """Checkpoint a learner that updated since the last save (or always, when forced); True if written."""
        proposer = self.proposer
        if not isinstance(proposer, Learner) or (not force and proposer.updates == self._saved_updates):
            return False
        save_checkpoint(proposer, self.path, self.observed_through)
        self._saved_updates = proposer.updates
        return True
