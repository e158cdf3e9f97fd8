"""An infinite learning rate: the weights and then the loss stop being finite: the runner must record NAN."""

import torch
import torch.nn.functional as F

from autoresearch_rl.env import runtime

ctx = runtime.setup()
model = torch.nn.Embedding(ctx.vocab_size, ctx.vocab_size)
opt = torch.optim.SGD(model.parameters(), lr=float("inf"))
for step, (x, y) in enumerate(ctx.train_batches(4)):
    loss = F.cross_entropy(model(x).view(-1, ctx.vocab_size), y.reshape(-1))
    loss.backward()
    opt.step()
    opt.zero_grad()
    ctx.step_done(step, loss.item(), tokens=x.numel())
    if ctx.budget.exhausted:
        break
ctx.finish(model, model_config={})
