"""Markdown tables of a `search_efficiency.py` result, as BENCHMARKS.md shows them.

    python benchmarks/tables.py benchmarks/results/external.json --focus ppo --at 100 \\
        --bar greedy,evolution,gp_local --held-out nb201:cifar100,nb201:imagenet,hpobench:kc1,...

Prints: the median normalised true regret per task and agent at every checkpoint (bold: best), false
keeps per 100 decisions, the focus agent against every other agent paired over seeds at `--at`
(wins-losses-ties, exact sign-test p, bootstrap 95% CI of the median paired difference), and, with
`--bar`, on how many held-out tasks the focus agent beats each of those agents with p < 0.05 and is
significantly worse than none.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _paired(entry: dict, focus: str, other: str, at: str) -> tuple[int, int, int, float, float, float]:
    """(wins, losses, ties, p, ci_low, ci_high) of `focus` against `other` (negative difference favours focus)."""
    key = f"{focus}_vs_{other}"
    flipped = key not in entry["paired"]
    r = entry["paired"][f"{other}_vs_{focus}" if flipped else key][at]
    wins, losses = (r["losses"], r["wins"]) if flipped else (r["wins"], r["losses"])
    low, high = r["ci95_median_diff"]
    if flipped:
        low, high = -high, -low
    return wins, losses, r["ties"], r["p_sign"], low, high


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("result")
    parser.add_argument("--focus", default="ppo")
    parser.add_argument("--at", default=None, help="iteration of the paired table (default: the last checkpoint)")
    parser.add_argument("--bar", default="", help="comma-separated agents the focus must beat (p < 0.05)")
    parser.add_argument("--held-out", default="", help="comma-separated tasks the bar is counted on")
    args = parser.parse_args(argv)
    data = json.loads(Path(args.result).read_text())
    tasks, agents, points = data["meta"]["tasks"], data["meta"]["agents"], [str(t) for t in data["meta"]["checkpoints"]]
    at = args.at or points[-1]
    for t in points:
        print(f"\nMedian normalised true regret at {t} iterations (bold: best on the task):\n")
        print("| task | " + " | ".join(agents) + " |\n|---|" + "---|" * len(agents))
        for task in tasks:
            medians = {a: data["tasks"][task]["agents"][a]["median"][t] for a in agents}
            best = min(medians.values())
            cells = [f"**{m:.3f}**" if m == best else f"{m:.3f}" for m in medians.values()]
            print(f"| {task} | " + " | ".join(cells) + " |")
    print("\nFalse keeps per 100 decisions:\n")
    print("| task | " + " | ".join(agents) + " |\n|---|" + "---|" * len(agents))
    for task in tasks:
        e = data["tasks"][task]["agents"]
        print(f"| {task} | " + " | ".join(f"{e[a]['false_keeps_per_100_decisions']:.2f}" for a in agents) + " |")
    others = [a for a in agents if a != args.focus]
    print(f"\n`{args.focus}` against each agent at {at} iterations: wins-losses-ties, sign-test p, 95% CI of the "
          f"median paired difference ({args.focus} - other). ✓ significantly better, ✗ significantly worse.\n")
    print("| task | " + " | ".join(others) + " |\n|---|" + "---|" * len(others))
    for task in tasks:
        cells = []
        for b in others:
            w, l, ties, p, low, high = _paired(data["tasks"][task], args.focus, b, at)
            mark = (" ✓" if w > l else " ✗") if p < 0.05 else ""
            cells.append(f"{w}-{l}-{ties}, p={p:.2g}{mark}, [{low:+.3f}, {high:+.3f}]")
        print(f"| {task} | " + " | ".join(cells) + " |")
    if args.bar:
        bar = args.bar.split(",")
        held = [t for t in (args.held_out.split(",") if args.held_out else tasks) if t in tasks]
        met = 0
        print(f"\nThe bar: `{args.focus}` better than each of {', '.join(bar)} with p < 0.05 (at {at} iterations):\n")
        for task in held:
            pairs = {b: _paired(data["tasks"][task], args.focus, b, at) for b in others}
            beats = [b for b in bar if pairs[b][3] < 0.05 and pairs[b][0] > pairs[b][1]]
            worse = [b for b in others if pairs[b][3] < 0.05 and pairs[b][1] > pairs[b][0]]
            met += len(beats) == len(bar) and not worse
            print(f"- {task}: beats {', '.join(beats) or 'none'}; "
                  f"significantly worse than {', '.join(worse) or 'none'}")
        print(f"\nmet on {met} of {len(held)} held-out tasks")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
