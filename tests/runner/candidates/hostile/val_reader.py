"""Validation-data reader: opens the val split during training (through the runtime's dataset and by
path) and trains on it, which would make its val_bpb look far better than it is.

In a sandbox the split is not there: it crashes with FileNotFoundError (CRASHED). Without one it
succeeds and is scored; the record says val data was not protected (summary["unenforced"]).
"""

import os
from pathlib import Path

import numpy as np
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
    by_path = Path(os.environ["ARL_CACHE_DIR"]) / ctx.dataset.root.name / "val.bin"
    print(f"val.bin by path: {len(by_path.read_bytes())} bytes", flush=True)
    val = np.asarray(ctx.dataset.tokens("val"))
    print(f"read {len(val)} validation tokens", flush=True)
    model = Bigram(ctx.vocab_size)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    T, rng = ctx.seq_len, np.random.default_rng(0)
    for step in range(10):
        starts = rng.integers(0, len(val) - T - 1, size=8)
        window = torch.from_numpy(np.stack([val[s:s + T + 1] for s in starts]).astype(np.int64))
        x, y = window[:, :-1], window[:, 1:]
        loss = F.cross_entropy(model(x).view(-1, ctx.vocab_size), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad()
        ctx.step_done(step, loss.item(), tokens=x.numel())
        if ctx.budget.exhausted:  # a loaded machine may not fit 10 steps in the budget: stop honestly
            break
    ctx.finish(model, model_config={"vocab": ctx.vocab_size})
