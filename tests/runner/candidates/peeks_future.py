"""A model whose prediction at position t reads token t+1: the evaluator must reject it as NONCAUSAL."""

import torch
import torch.nn.functional as F

from autoresearch_rl.env import runtime


class Cheater(torch.nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.table = torch.nn.Embedding(vocab, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        future = torch.roll(idx, shifts=-1, dims=1)  # token t+1 at position t: the answer
        return self.table(future)


if __name__ == "__main__":
    ctx = runtime.setup()
    model = Cheater(ctx.vocab_size)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for step, (x, y) in enumerate(ctx.train_batches(8)):
        loss = F.cross_entropy(model(x).view(-1, ctx.vocab_size), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad()
        ctx.step_done(step, loss.item(), tokens=x.numel())
        if step >= 30:
            break
    ctx.finish(model, model_config={"vocab": ctx.vocab_size})
