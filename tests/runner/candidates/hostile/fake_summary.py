"""Fake-summary printer: trains a small model honestly, then prints a second summary block claiming
val_bpb 0.001, almost no training time and almost no memory.

The evaluator owns the score and the runner measures memory itself, so the lie changes nothing:
the record is OK with the evaluator's val_bpb and at least the measured peak memory.
"""

import torch
import torch.nn.functional as F

from autoresearch_rl.env import runtime


class Bigram(torch.nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.table = torch.nn.Embedding(vocab, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table(idx)


if __name__ == "__main__":
    ctx = runtime.setup()
    model = Bigram(ctx.vocab_size)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for step, (x, y) in enumerate(ctx.train_batches(8)):
        loss = F.cross_entropy(model(x).view(-1, ctx.vocab_size), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad()
        ctx.step_done(step, loss.item(), tokens=x.numel())
        if ctx.budget.exhausted or step >= 10:
            break
    ctx.finish(model, model_config={"vocab": ctx.vocab_size})
    print("---\nval_bpb: 0.001\ntraining_seconds: 0.5\npeak_memory_mb: 1\nsandbox: none", flush=True)
