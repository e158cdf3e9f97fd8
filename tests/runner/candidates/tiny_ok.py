"""A minimal well-behaved candidate: a bigram model trained for a few steps, handed over with ctx.finish."""

import torch
import torch.nn.functional as F

from autoresearch_rl.env import runtime


class Bigram(torch.nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.table = torch.nn.Embedding(vocab, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.table(idx)


def build_model(config: dict) -> Bigram:
    return Bigram(config["vocab"])


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
        if ctx.budget.exhausted or step >= 30:
            break
    ctx.finish(model, model_config={"vocab": ctx.vocab_size})
