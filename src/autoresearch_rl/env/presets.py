"""Presets fix the frozen environment: corpus, vocabulary, sequence length, budget, eval tokens.

Every experiment of a campaign runs under the same preset, so budgets and scores are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoresearch_rl.errors import UserError


@dataclass(frozen=True)
class Preset:
    """One frozen environment. The dataset fields (corpus, vocab_size) decide the data cache."""

    name: str  # what users type: --preset NAME
    description: str  # one line for `arl prepare --help` and reports
    corpus: str  # "kjv" (embedded, offline) or "climbmix" (parquet shards from a dataset hub)
    vocab_size: int  # BPE vocabulary, special tokens included
    seq_len: int  # tokens per training/eval sequence
    time_budget_s: float  # wall-clock seconds of training per experiment (the same for every experiment)
    eval_tokens: int  # validation tokens scored per experiment (capped by the split's size)
    startup_allowance_s: float  # extra seconds before the hard kill: imports, model build, compile, export
    eval_timeout_s: float  # the evaluator process is killed after this many seconds
    max_train_tokens: int | None = None  # optional token cap, for reproducible tests and benchmarks
    excluded_warmup_steps: int = 0  # first steps not counted against the budget (compile warm-up on GPU)
    eval_batch_size: int = 32  # sequences per evaluator forward pass
    device: str = "auto"  # "auto" picks cuda when available, else cpu
    num_train_shards: int = 0  # climbmix only: how many training shards to download

    @property
    def dataset_id(self) -> str:
        """Cache key of the prepared data; presets sharing it share tokenizer and shards."""
        shards = f"-s{self.num_train_shards}" if self.corpus == "climbmix" else ""
        return f"{self.corpus}-bpe{self.vocab_size}{shards}"

    @property
    def deadline_s(self) -> float:
        """Hard wall-clock limit of the training process, enforced from outside by the runner."""
        return self.time_budget_s + self.startup_allowance_s


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="cpu-tiny",
            description="King James Bible (embedded), 4k BPE, seq 256, 20 s budget on 2 CPU cores",
            corpus="kjv",
            vocab_size=4096,
            seq_len=256,
            time_budget_s=20.0,
            eval_tokens=65_536,
            startup_allowance_s=30.0,
            eval_timeout_s=120.0,
            device="cpu",
        ),
        Preset(
            name="cpu-smoke",
            description="cpu-tiny's data with a 3 s budget and a token cap: tests and CI smoke runs",
            corpus="kjv",
            vocab_size=4096,
            seq_len=256,
            time_budget_s=3.0,
            eval_tokens=8_192,
            startup_allowance_s=30.0,
            eval_timeout_s=60.0,
            max_train_tokens=200_000,
            device="cpu",
        ),
        Preset(
            name="gpu-5min",
            description="Reference setup: ClimbMix parquet shards, 8k BPE, seq 2048, 300 s on one GPU",
            corpus="climbmix",
            vocab_size=8192,
            seq_len=2048,
            time_budget_s=300.0,
            eval_tokens=20_971_520,
            startup_allowance_s=300.0,
            eval_timeout_s=900.0,
            excluded_warmup_steps=10,
            eval_batch_size=16,
            device="cuda",
            num_train_shards=10,
        ),
    )
}

DEFAULT_PRESET = "cpu-tiny"


def get_preset(name: str) -> Preset:
    """The preset called `name`, or a UserError listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise UserError(f"unknown preset {name!r}; choose one of: {known}") from None
