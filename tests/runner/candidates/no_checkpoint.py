"""Trains, prints a convincing summary, exits 0, but never saves a model."""

from autoresearch_rl.env import runtime

ctx = runtime.setup()
for step, (x, y) in enumerate(ctx.train_batches(4)):
    ctx.step_done(step, 5.0, tokens=x.numel())
    if step >= 3:
        break
print("---")
print("training_seconds: 3.0")
print("val_bpb: 0.1")
