"""A user's own small trainer (not our template): a per-token MLP language model with its own constants.

Only the generic hyperparameter operators apply to it; the structural ones must leave it alone.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from autoresearch_rl.env import runtime

HIDDEN = 64
LEARNING_RATE = 0.01  # search: log 0.001..0.1
BATCH = 8  # search: int 1..32
USE_BIAS = True
ACTIVATION = "relu"  # search: choice "relu", "gelu", "tanh"
MOMENTUM = 0.9  # search: linear 0.0..0.99
name_in_lowercase = 3  # not a constant
DERIVED = HIDDEN * 2  # not a literal: not tunable


class TokenMLP(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, HIDDEN)
        self.fc = nn.Linear(HIDDEN, HIDDEN, bias=USE_BIAS)
        self.out = nn.Linear(HIDDEN, vocab, bias=USE_BIAS)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        act = {"relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh}[ACTIVATION]
        return self.out(act(self.fc(self.embed(idx))))


def main() -> None:
    ctx = runtime.setup()
    model = TokenMLP(ctx.vocab_size).to(ctx.device)
    opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    for step, (x, y) in enumerate(ctx.train_batches(BATCH)):
        loss = F.cross_entropy(model(x).view(-1, ctx.vocab_size), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad()
        ctx.step_done(step, loss.item(), tokens=x.numel())
        if ctx.budget.exhausted:
            break
    ctx.finish(model, model_config={})


if __name__ == "__main__":
    main()
