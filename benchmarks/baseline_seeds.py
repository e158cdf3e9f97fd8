"""Seed noise of the unmodified baseline: val_bpb over N seeds, and the time split of each run.

The seed spread is the noise floor every keep decision must clear, so it is measured, not assumed.
Also scores the *untrained* template model, so "the baseline learned something" is a number.

    python benchmarks/baseline_seeds.py --preset cpu-tiny --seeds 5 --out benchmarks/results/baseline_cpu-tiny.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from autoresearch_rl.campaign import Campaign
from autoresearch_rl.env import checkpoint
from autoresearch_rl.env.data import Dataset, default_cache_dir, prepare_dataset
from autoresearch_rl.env.evaluator import evaluate
from autoresearch_rl.env.presets import get_preset
from autoresearch_rl.target import template_source
from autoresearch_rl.target.loader import imported_source


def untrained_bpb(preset_name: str, cache_dir: Path) -> float:
    """val_bpb of the template's model straight after initialisation."""
    preset = get_preset(preset_name)
    vocab = Dataset.open(preset, cache_dir).vocab_size
    with imported_source(template_source()) as module:
        config = dataclasses.asdict(module.make_config(vocab, preset.seq_len))
        model = module.build_model(config)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint.save(model, Path(tmp), model_config=config, seq_len=preset.seq_len,
                        vocab_size=vocab, device=torch.device("cpu"))
        result = evaluate(Path(tmp), preset, cache_dir)
    assert result.val_bpb is not None, result.error
    return result.val_bpb


def plot(rows: list[dict], untrained: float, path: Path, preset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    seeds = [r["seed"] for r in rows]
    ax.scatter(seeds, [r["val_bpb"] for r in rows], label="baseline (trained)", color="tab:blue")
    mean = statistics.mean(r["val_bpb"] for r in rows)
    ax.axhline(mean, color="tab:blue", linestyle="--", linewidth=1, label=f"mean {mean:.4f}")
    ax.set_xlabel("seed")
    ax.set_ylabel("val_bpb")
    ax.set_title(f"{preset}: baseline val_bpb by seed (untrained model: {untrained:.3f})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-tiny")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/baseline.json"))
    args = parser.parse_args()
    cache = args.cache_dir or default_cache_dir()
    prepare_dataset(get_preset(args.preset), cache)
    untrained = untrained_bpb(args.preset, cache)
    rows = []
    with tempfile.TemporaryDirectory() as run_dir, Campaign.open(Path(run_dir), args.preset, cache) as campaign:
        for seed in range(args.seeds):
            _, record = campaign.run(template_source(), role="baseline", description=f"seed {seed}", seed=seed)
            t = record.timings
            rows.append(dict(seed=seed, status=record.status.value, val_bpb=record.val_bpb, steps=record.summary.get("steps"),
                             tokens=record.summary.get("tokens"), startup_s=t.startup, training_s=t.training,
                             save_s=t.save, eval_s=t.evaluation, total_s=t.total))
            print(f"seed {seed}: {record.status.value} val_bpb {record.val_bpb}", flush=True)
    scored = [r for r in rows if r["val_bpb"] is not None]
    values = [r["val_bpb"] for r in scored]
    header = f"{'seed':>4} {'val_bpb':>9} {'steps':>6} {'tokens':>8} {'start-up':>8} {'train':>6} {'save':>5} {'eval':>5} {'total':>6}"
    print(header)
    for r in rows:
        print(f"{r['seed']:>4} {r['val_bpb'] or float('nan'):>9.4f} {r['steps'] or 0:>6} {r['tokens'] or 0:>8} "
              f"{r['startup_s']:>8.1f} {r['training_s']:>6.1f} {r['save_s']:>5.1f} {r['eval_s']:>5.1f} {r['total_s']:>6.1f}")
    mean, std = statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0
    print(f"mean {mean:.4f}  std {std:.4f}  (n={len(values)})  untrained {untrained:.4f}")
    result = dict(preset=args.preset, seeds=args.seeds, mean=mean, std=std, untrained_val_bpb=untrained, runs=rows,
                  torch=torch.__version__, when=time.strftime("%Y-%m-%d %H:%M:%S"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    plot(scored, untrained, args.out.with_suffix(".png"), args.preset)
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
