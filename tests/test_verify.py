"""`arl verify`: interleaved fresh-seed re-runs of baseline and best, a Welch interval, resumable, honest about 0."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from autoresearch_rl.campaign import Campaign
from autoresearch_rl.cli import main
from autoresearch_rl.synthetic import LandscapeConfig, SyntheticLandscape
from autoresearch_rl.target import template_source
from autoresearch_rl.verify import ROLE, verify, welch_interval
from synthetic_campaign import synthetic_campaign


def _campaign(run_dir: Path, cache: Path, iters: int = 25, seed: int = 1) -> None:
    synthetic_campaign(run_dir, cache, "greedy", iters, seed)


def test_welch_interval_matches_a_hand_computation() -> None:
    diff, low, high = welch_interval([1.0, 2.0, 3.0], [0.0, 0.5, 1.0])
    assert diff == pytest.approx(1.5)
    # se = sqrt(1/3 + 0.25/3) = 0.6455; Welch dof = 2.94; t(0.975, 2.94) = 3.20
    assert high - diff == pytest.approx(diff - low)
    assert (high - diff) == pytest.approx(3.20 * 0.6455, rel=0.02)


def test_verify_interleaves_fresh_seeds_and_resumes(tmp_path: Path, smoke_cache: Path) -> None:
    run_dir = tmp_path / "run"
    _campaign(run_dir, smoke_cache)
    with Campaign.open(run_dir, None, smoke_cache, create=False) as campaign:
        meta = campaign.ledger.meta()
        assert meta["incumbent"]["sha"] != meta["base_commit"], "this seed keeps an edit"
        search_seeds = set(meta["seeds"])
        campaign.executor = SyntheticLandscape(template_source(), LandscapeConfig(seed=1))
        result = verify(campaign, runs_each=3)
        rows = [r for r in campaign.ledger.experiments() if r.role == ROLE]
    assert result is not None
    assert [r.proposal["arm"] for r in rows] == ["baseline", "best"] * 3  # interleaved
    assert not {r.seed for r in rows} & search_seeds  # never a seed the search used
    base = [r.val_bpb for r in rows if r.proposal["arm"] == "baseline"]
    best = [r.val_bpb for r in rows if r.proposal["arm"] == "best"]
    assert result.gain == pytest.approx(statistics.fmean(base) - statistics.fmean(best))
    assert result.ci95_low <= result.gain <= result.ci95_high
    with Campaign.open(run_dir, None, smoke_cache, create=False) as campaign:  # again: reuses, runs nothing
        campaign.executor = SyntheticLandscape(template_source(), LandscapeConfig(seed=1))
        again = verify(campaign, runs_each=3)
        assert len([r for r in campaign.ledger.experiments() if r.role == ROLE]) == 6
    assert again == result
    assert main(["status", "--run-dir", str(run_dir), "--json"]) == 0


def test_status_json_carries_the_verified_gain(tmp_path: Path, smoke_cache: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    _campaign(run_dir, smoke_cache)
    with Campaign.open(run_dir, None, smoke_cache, create=False) as campaign:
        campaign.executor = SyntheticLandscape(template_source(), LandscapeConfig(seed=1))
        result = verify(campaign, runs_each=2)
    capsys.readouterr()
    main(["status", "--run-dir", str(run_dir), "--json"])
    verified = json.loads(capsys.readouterr().out)["verified"]
    assert set(verified) == {"baseline_mean", "best_mean", "gain", "ci95_low", "ci95_high", "runs_each"}
    assert verified["gain"] == pytest.approx(result.gain) and verified["runs_each"] == 2
    line = result.line()
    assert ("no verified improvement" in line) == (result.ci95_low <= 0)


def test_verify_before_calibration_is_a_one_line_error(tmp_path: Path, smoke_cache: Path, capsys) -> None:
    with Campaign.open(tmp_path / "run", "cpu-smoke", smoke_cache):
        pass
    assert main(["verify", "--run-dir", str(tmp_path / "run"), "--cache-dir", str(smoke_cache)]) == 2
    assert "not calibrated" in capsys.readouterr().err


def test_runs_outside_the_event_log_never_share_a_workspace_with_its_experiments(tmp_path: Path,
                                                                                  smoke_cache: Path) -> None:
    """`arl verify` adds ledger rows after a core campaign, which may go on: row 12's run must not train in the
    directory of the log's experiment 12."""
    run_dir = tmp_path / "run"
    _campaign(run_dir, smoke_cache, iters=10)
    with Campaign.open(run_dir, None, smoke_cache, create=False) as campaign:
        campaign.executor = SyntheticLandscape(template_source(), LandscapeConfig(seed=1))
        verify(campaign, runs_each=2)
    _campaign(run_dir, smoke_cache, iters=20)  # the campaign goes on after its verification
    with Campaign.open(run_dir, None, smoke_cache, create=False) as campaign:
        rows = campaign.ledger.experiments()
    outside = [r for r in rows if r.role == ROLE]
    assert outside and all(Path(r.workspace).name == f"{ROLE}-{r.id:05d}" for r in outside)
    workspaces = [r.workspace for r in rows if r.workspace]
    assert len(workspaces) == len(set(workspaces))
