"""The meta-learner: PPO over edits of a training script."""
