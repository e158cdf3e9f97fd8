"""Clock freezer: stops the frozen runtime's clock (time.perf_counter returns a constant) and lifts
the token cap, so the budget never runs out and it would train forever.

Time is also enforced from outside: the runner kills it at the deadline (TIMED_OUT).
"""

import time

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
    ctx.budget.max_tokens = None
    time.perf_counter = lambda: 0.0
    model = Bigram(ctx.vocab_size)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for step, (x, y) in enumerate(ctx.train_batches(8)):
        loss = F.cross_entropy(model(x).view(-1, ctx.vocab_size), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad()
        ctx.step_done(step, loss.item(), tokens=x.numel())
        if ctx.budget.exhausted:
            break
    ctx.finish(model, model_config={"vocab": ctx.vocab_size})
