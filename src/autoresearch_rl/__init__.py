"""autoresearch-rl: a PPO agent that researches edits to a train.py under a fixed wall-clock budget.

Three concerns live apart: `env/` (frozen: data, tokenizer, evaluator, integrity), `target/` (the
mutable train.py), and the meta-learner. `runner/` runs one experiment, `ledger/` records them.
"""

__version__ = "0.2.0"
