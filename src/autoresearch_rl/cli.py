"""`arl`: the command line. User mistakes print one line and exit 2; nothing here prints a traceback for them."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path


from autoresearch_rl import __version__
from autoresearch_rl.campaign import Campaign
from autoresearch_rl.env.data import prepare_dataset
from autoresearch_rl.env.presets import DEFAULT_PRESET, PRESETS, get_preset
from autoresearch_rl.errors import UserError
from autoresearch_rl.experiment import ExperimentRecord
from autoresearch_rl.logparse import parse_log
from autoresearch_rl.selfeval.abort import AbortConfig
from autoresearch_rl.cli_common import DEFAULT_RUN_DIR, _cache_dir, console
from autoresearch_rl.cli_results import cmd_report, cmd_status, cmd_verify
from autoresearch_rl.cli_source import _read_source, candidate_device, cmd_apply, cmd_edits

def cmd_prepare(args: argparse.Namespace) -> int:
    preset = get_preset(args.preset)
    started = time.perf_counter()
    with console.status(f"preparing {preset.name} ({preset.dataset_id})") as status:
        root = prepare_dataset(preset, _cache_dir(args), data=args.data, force=args.force,
                               progress=lambda msg: status.update(msg))
    console.print(f"prepared {preset.name} in {root} ({time.perf_counter() - started:.1f} s)")
    return 0


def _watch_training(workspace_root: Path, stop: threading.Event, status) -> None:
    """Show the latest progress line of the newest experiment while it trains."""
    while not stop.wait(0.5):
        logs = sorted(workspace_root.glob("*/train.log"))
        if not logs:
            continue
        progress = parse_log(logs[-1]).progress
        if progress:
            p = progress[-1]
            status.update(f"training: step {p.step}, {p.elapsed:.1f} s, loss {p.loss:.4f}")


def _print_record(exp_id: int, record: ExperimentRecord) -> None:
    t = record.timings
    console.print(f"experiment {exp_id} (seed {record.seed}): [bold]{record.status.value}[/bold]"
                  + (f" - {record.error}" if record.error else ""))
    console.print(f"  start-up {t.startup:.1f} s | training {t.training:.1f} s | save {t.save:.1f} s "
                  f"| evaluation {t.evaluation:.1f} s | total {t.total:.1f} s")
    s = record.summary
    if s:
        console.print(f"  steps {s.get('steps', '?')} | tokens {s.get('tokens', '?')} | params {s.get('params', '?')} "
                      f"| peak memory {record.memory_gb:.2f} GB | device {s.get('device', '?')}")
    uniform = record.eval_details.get("uniform_bpb")
    if uniform:
        console.print(f"  uniform-prediction bpb (an untrained model) {uniform:.4f}")
    console.print(f"  log: {record.log_path}")


def cmd_baseline(args: argparse.Namespace) -> int:
    if args.source is not None:
        path = Path(args.source)
        if not path.is_file():
            raise UserError(f"--source {path} does not exist; pass the path of a train.py")
        source = path.read_text()
        description = f"baseline: {path.name}"
    else:
        from autoresearch_rl.target import template_source

        source, description = template_source(), "baseline: template train.py"
    with Campaign.open(args.run_dir, args.preset, _cache_dir(args)) as campaign:
        if n := campaign.recover():
            console.print(f"marked {n} experiment(s) left running by a stopped controller as INTERRUPTED")
        preset = campaign.preset
        console.print(f"campaign {campaign.run_dir} | preset {preset.name} | budget {preset.time_budget_s:.0f} s | seed {args.seed}")
        stop = threading.Event()
        with console.status("starting") as status:
            watcher = threading.Thread(target=_watch_training, args=(campaign.run_dir / "experiments", stop, status), daemon=True)
            watcher.start()
            try:
                exp_id, record = campaign.run(source, role="baseline", description=description, seed=args.seed)
            finally:
                stop.set()
        _print_record(exp_id, record)
    if record.val_bpb is not None:
        print(f"val_bpb: {record.val_bpb:.6f}")
        return 0
    print(f"status: {record.status.value}")
    return 1


def retired_agent(name: str) -> None:
    from autoresearch_rl.cli_core_run import RETIRED_AGENTS

    if name in RETIRED_AGENTS:
        raise UserError(f"--agent {name}: {RETIRED_AGENTS[name]}")


def _loop_config(args: argparse.Namespace, recorded_seed: int | None):
    from autoresearch_rl.decision import KeepRule, NoiseConfig
    from autoresearch_rl.loop_config import LoopConfig
    from autoresearch_rl.oracle import OracleConfig

    if args.max_iters is not None and args.max_iters < 0:
        raise UserError("--max-iters must be >= 0")
    if not 0.0 <= args.abort_shadow <= 1.0:
        raise UserError(f"--abort-shadow must be in [0, 1], not {args.abort_shadow}")
    if not args.abort_z >= 0.0:
        raise UserError(f"--abort-z must be a number >= 0, not {args.abort_z}")
    if not args.abort_measured_z >= 0.0:
        raise UserError(f"--abort-measured-z must be a number >= 0, not {args.abort_measured_z}")
    if not 0.0 <= args.abort_warmup < 1.0:
        raise UserError(f"--abort-warmup must be in [0, 1), not {args.abort_warmup}")
    if not 0.0 < args.abort_every <= 1.0:
        raise UserError(f"--abort-every must be in (0, 1], not {args.abort_every}")
    if not 0.0 <= args.audit_fraction < 1.0:
        raise UserError(f"--audit-fraction must be in [0, 1), not {args.audit_fraction}")
    if args.calibration_seeds < 2:
        raise UserError("--calibration-seeds must be at least 2 (the noise is a standard deviation)")
    keep = KeepRule(strict=True) if args.agent == "greedy" else KeepRule()  # greedy: the reference protocol
    if args.keep_rule == "strict":
        keep = KeepRule(strict=True)
    elif args.keep_rule == "noise":
        keep = KeepRule(margin_sigmas=args.keep_margin)
    seed = args.seed if recorded_seed is None else recorded_seed
    oracle = OracleConfig(max_iters=args.max_iters, max_hours=args.max_hours, max_device_hours=args.max_device_hours)
    return LoopConfig(seed=seed, noise=NoiseConfig(calibration_seeds=args.calibration_seeds), keep=keep, oracle=oracle,
                      smoke_check=not args.no_smoke, audit_fraction=args.audit_fraction,
                      abort=None if args.no_early_abort else AbortConfig(
                          shadow_probability=args.abort_shadow, z=args.abort_z, measured_z=args.abort_measured_z,
                          warmup_fraction=args.abort_warmup, check_every_fraction=args.abort_every))


def cmd_run(args: argparse.Namespace) -> int:
    from autoresearch_rl.campaign import RunnerExecutor, campaign_summary
    from autoresearch_rl.cli_core_run import refuse_earlier_campaigns, run_core
    from autoresearch_rl.display import LiveDisplay
    from autoresearch_rl.loop_config import resolve_base_source
    from autoresearch_rl.target.knobs import AnnotationError
    from autoresearch_rl.target.space import ActionSpace

    retired_agent(args.agent)
    requested = _read_source(args.source) if args.source else None
    with Campaign.open(args.run_dir, args.preset, _cache_dir(args)) as campaign:
        refuse_earlier_campaigns(campaign)
        meta = campaign.ledger.meta()
        recorded_seed = meta.get("campaign_seed")
        if recorded_seed is not None and recorded_seed != args.seed:
            console.print(f"resuming with the campaign's recorded seed {recorded_seed} (not --seed {args.seed})")
        config = _loop_config(args, recorded_seed)
        from autoresearch_rl.runner import RunnerConfig

        runner_config = RunnerConfig(sandbox=args.sandbox, import_candidate_code=not args.no_import_fallback,
                                     data_seed=config.seed)  # every run of the campaign sees the same data order
        campaign.executor = RunnerExecutor(campaign.preset, campaign.cache_dir, campaign.manifest_path,
                                           config=runner_config, smoke=config.smoke_check)
        base = resolve_base_source(campaign, requested)
        try:
            space = ActionSpace.for_source(base, device=candidate_device(campaign.preset.device, args.gpus_per_worker))
        except AnnotationError as exc:
            raise UserError(f"bad # search: annotation: {exc}") from None
        if not any(space.mask(base)):
            raise UserError("the base train.py has no tunable constant its code reads: declare module-level UPPER_CASE "
                            "constants such as `LR = 0.01  # search: log 0.001..0.1` (README: your own train.py)")
        from autoresearch_rl.backends import make_backend

        resumed = bool(campaign.ledger.experiments())
        console.print(f"{'resuming' if resumed else 'starting'} campaign {campaign.run_dir} | preset {campaign.preset.name} "
                      f"| agent {args.agent} | budget {campaign.preset.time_budget_s:.0f} s per experiment | "
                      f"keep rule {'strict' if config.keep.strict else f'> {config.keep.margin_sigmas:g} sigma'}")
        console.print(f"stop it cleanly with Ctrl-C or `touch {campaign.run_dir / 'STOP'}`; re-run this command to resume")
        backend = make_backend(args.backend, campaign.executor, workers=args.workers, device=campaign.preset.device,
                               ray_address=args.ray_address, cpus_per_worker=args.cpus_per_worker,
                               gpus_per_worker=args.gpus_per_worker)
        if backend.slots > 1 or args.backend != "local":
            console.print(f"backend {args.backend} | {backend.slots} experiment(s) at once")
        display = LiveDisplay(console, campaign.run_dir, campaign.ledger, args.agent, campaign.preset.time_budget_s,
                              args.max_iters)
        _, reason = run_core(campaign, args.agent, config, base, backend, space.device, display)
        summary = campaign_summary(campaign.run_dir, campaign.ledger.meta(), campaign.ledger)
    console.print(f"[bold]stopped[/bold] - {reason}")
    console.print(f"iterations {summary['iterations']} | kept {summary['kept']} | baseline {summary['baseline_val_bpb']} "
                  f"| best {summary['best_val_bpb']} | sigma {summary['noise_sigma']:.4f} | agent updates "
                  f"{summary['agent_updates']}")
    console.print(f"see `arl report --run-dir {args.run_dir}` for progress.png, results.tsv, best.diff")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="arl", description="An RL agent that researches edits to train.py.")
    parser.add_argument("--version", action="version", version=f"autoresearch-rl {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    presets = ", ".join(sorted(PRESETS))

    def common(p: argparse.ArgumentParser, preset_default: str | None = DEFAULT_PRESET) -> None:
        p.add_argument("--preset", default=preset_default, help=f"frozen environment: {presets} (default {DEFAULT_PRESET})")
        p.add_argument("--cache-dir", default=None, help="prepared data lives here (default $ARL_HOME or ~/.cache/autoresearch-rl)")

    p = sub.add_parser("prepare", help="build the frozen environment (tokenizer, token shards) into the cache")
    common(p)
    p.add_argument("--data", default=None, help="gpu presets: a directory or URL holding the parquet shards")
    p.add_argument("--force", action="store_true", help="rebuild even when already prepared")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("baseline", help="run the unmodified train.py (or --source FILE) once, score it, record it")
    common(p, preset_default=None)
    p.add_argument("--seed", type=int, default=0, help="training seed (recorded)")
    p.add_argument("--run-dir", default=str(DEFAULT_RUN_DIR), help="campaign directory (default runs/default)")
    p.add_argument("--source", default=None, help="a train.py of your own instead of the template")
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("edits", help="list the edit operators for a train.py and which apply now")
    p.add_argument("--source", default=None, help="a train.py (default: the template)")
    p.add_argument("--json", action="store_true", help="a list of objects: operator, kind, args, applicable, mask")
    p.set_defaults(func=cmd_edits)

    p = sub.add_parser("apply", help="apply one edit to a train.py and print the diff")
    p.add_argument("operator", help="operator name, e.g. scale:MATRIX_LR or activation")
    p.add_argument("arg", help="its argument, e.g. x1.2 or swiglu")
    p.add_argument("--source", default=None, help="a train.py (default: the template)")
    p.add_argument("--out", default=None, help="write the edited train.py here")
    p.add_argument("--smoke", action="store_true", help="also run the cheap smoke check (one tiny training step)")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("run", help="research: calibrate, then propose, train, score, keep or revert, learn; resumes")
    common(p, preset_default=None)
    from autoresearch_rl.cli_core_run import AGENTS, RETIRED_AGENTS

    p.add_argument("--agent", choices=AGENTS + tuple(RETIRED_AGENTS), default="ppo", metavar="AGENT",
                   help=f"proposer: {', '.join(AGENTS)} (default ppo)")
    p.add_argument("--max-iters", type=int, default=None, help="stop after N iterations in total (default: no limit)")
    p.add_argument("--max-hours", type=float, default=None, help="stop after H wall-clock hours over all sessions")
    p.add_argument("--max-device-hours", type=float, default=None, help="stop after experiments used H device-hours")
    p.add_argument("--run-dir", default=str(DEFAULT_RUN_DIR), help="campaign directory; an existing one is resumed")
    p.add_argument("--seed", type=int, default=0, help="campaign seed (agent and training seeds derive from it)")
    p.add_argument("--source", default=None, help="a train.py of your own as the base (new campaigns only)")
    p.add_argument("--calibration-seeds", type=int, default=3, help="baseline runs that measure the noise (default 3)")
    p.add_argument("--keep-rule", choices=("noise", "strict"), default=None,
                   help="noise: beat the incumbent by > --keep-margin sigma (confirmed when close); strict: any "
                        "improvement (the reference protocol). Default: strict for greedy, noise otherwise")
    p.add_argument("--keep-margin", type=float, default=2.0, help="sigmas a candidate must win by (default 2)")
    p.add_argument("--no-smoke", action="store_true", help="skip the one-step smoke check before each candidate")
    p.add_argument("--sandbox", choices=("auto", "bwrap", "unshare", "none"), default="auto",
                   help="candidate isolation (auto: bubblewrap if installed, see SECURITY.md)")
    p.add_argument("--no-import-fallback", action="store_true",
                   help="never let the evaluator import a candidate's code when torch.export fails (EVAL_FAILED instead)")
    p.add_argument("--audit-fraction", type=float, default=0.1,
                   help="share of proposals made by random search to audit a learning agent (default 0.1; 0: none)")
    p.add_argument("--no-early-abort", action="store_true",
                   help="let every candidate use its whole budget (default: stop those whose loss curve is doomed)")
    abort = AbortConfig()  # the defaults live in the dataclass; the flags only override them
    p.add_argument("--abort-z", type=float, default=abort.z,
                   help="standard deviations of evidence before a run is aborted, under the noise model used until "
                        "the campaign has measured its own prediction errors; false aborts on shadow runs raise it "
                        f"(default {abort.z:g})")
    p.add_argument("--abort-measured-z", type=float, default=abort.measured_z,
                   help="the same once 6 scored runs have measured how far the curves' predictions land "
                        f"(default {abort.measured_z:g})")
    p.add_argument("--abort-warmup", type=float, default=abort.warmup_fraction,
                   help=f"share of the budget spent before the first check of a run (default {abort.warmup_fraction:g})")
    p.add_argument("--abort-every", type=float, default=abort.check_every_fraction,
                   help=f"share of the budget between checks after the first (default {abort.check_every_fraction:g})")
    p.add_argument("--abort-shadow", type=float, default=abort.shadow_probability,
                   help="share of would-be-aborted runs finished anyway to measure false aborts "
                        f"(default {abort.shadow_probability:g})")
    p.add_argument("--workers", type=int, default=1,
                   help="experiments at once: one per GPU on a GPU preset, a share of the cores on CPU (default 1)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local: this machine; ray: one Ray task per experiment (pip install 'autoresearch-rl[ray]')")
    p.add_argument("--ray-address", default=None,
                   help="Ray cluster to join: auto (the one this node belongs to) or HOST:PORT; Ray keeps retrying "
                        "an address that does not answer (default: start a local Ray instance)")
    p.add_argument("--cpus-per-worker", type=float, default=None, help="ray: CPUs each experiment reserves (default 1)")
    p.add_argument("--gpus-per-worker", type=float, default=None,
                   help="ray: GPUs each experiment reserves (default 1 on a GPU preset, else 0)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="write progress.png, results.tsv, best.diff and operators.md for a campaign")
    p.add_argument("--run-dir", default=str(DEFAULT_RUN_DIR))
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("status", help="summary of a campaign: counts by status, baseline and best val_bpb")
    p.add_argument("--run-dir", default=str(DEFAULT_RUN_DIR))
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("verify", help="re-run baseline and best interleaved on fresh seeds: the verified gain and its CI")
    p.add_argument("--run-dir", default=str(DEFAULT_RUN_DIR))
    p.add_argument("--runs-each", type=int, default=3, help="fresh-seed runs of each (>= 2)")
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=cmd_verify)

    from autoresearch_rl.agent.search.registry import META_WEIGHTS

    p = sub.add_parser("pretrain", help="meta-train the PPO policy across simulated campaigns (the shipped weights)")
    p.add_argument("--out", default=str(META_WEIGHTS), help="weights file (a .json and a .png are written beside it)")
    for name, kind in (("updates", int), ("episodes-per-update", int), ("group", int), ("horizon", int),
                       ("learning-rate", float),
                       ("entropy-coef", float), ("eval-every", int), ("eval-seeds", int), ("workers", int), ("seed", int)):
        p.add_argument(f"--{name}", dest=name.replace("-", "_"), type=kind, default=None)
    p.set_defaults(func=cmd_pretrain)
    return parser


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Meta-train the candidate-scoring PPO policy across simulated campaigns (agent/search/pretrain.py)."""
    from dataclasses import fields

    from autoresearch_rl.agent.search.pretrain import PretrainConfig, pretrain

    values = {f.name: getattr(args, f.name) for f in fields(PretrainConfig) if getattr(args, f.name, None) is not None}
    try:
        config = PretrainConfig(**values)
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad pretraining setting: {exc}") from exc
    if min(config.updates, config.episodes_per_update, config.group, config.workers) < 1 or config.horizon < 5:
        raise UserError("--updates, --episodes-per-update, --group and --workers must be >= 1 and --horizon >= 5")
    record = pretrain(config, Path(args.out))
    console.print(f"wrote {args.out} ({record['episodes']} episodes in {record['seconds']:.0f} s), "
                  f"{Path(args.out).with_suffix('.json')} and {Path(args.out).with_suffix('.png')}")
    return 0


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # a clean stop, like Ctrl-C: the running experiment is recorded as INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the running experiment was stopped and recorded as INTERRUPTED; "
              "run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
