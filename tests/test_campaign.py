"""Failure paths through a real campaign: each candidate's status lands in the ledger, consistently."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from autoresearch_rl.campaign import Campaign
from autoresearch_rl.env.data import dataset_dir
from autoresearch_rl.errors import UserError
from autoresearch_rl.experiment import Status

CANDIDATES = Path(__file__).parent / "runner" / "candidates"


def candidate(name: str) -> str:
    return (CANDIDATES / name).read_text()


@pytest.fixture
def campaign(tmp_path: Path, smoke_cache: Path):
    with Campaign.open(tmp_path / "run", "cpu-smoke", smoke_cache) as c:
        yield c


def assert_consistent(campaign: Campaign, exp_id: int, status: Status) -> None:
    """The ledger row, results.tsv and the git ref agree with the record; nothing is left RUNNING."""
    row = campaign.ledger.get(exp_id)
    assert row.status is status
    assert not campaign.ledger.running()
    assert campaign.history.experiment_commit(exp_id) == row.commit_sha
    tsv = (campaign.run_dir / "results.tsv").read_text().splitlines()
    assert tsv[0].split("\t") == ["commit", "val_bpb", "memory_gb", "status", "description"]
    assert any(line.startswith(row.commit_sha[:7]) for line in tsv[1:])


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def test_well_behaved_candidate_is_scored_and_becomes_incumbent(campaign: Campaign) -> None:
    exp_id, record = campaign.run(candidate("tiny_ok.py"), role="baseline", description="tiny", seed=3)
    assert record.status is Status.OK, record.error
    assert 0 < record.val_bpb < record.eval_details["uniform_bpb"]
    assert record.eval_details["checkpoint_format"] == "export"
    assert record.summary["steps"] >= 1 and record.summary["tokens"] > 0
    assert_consistent(campaign, exp_id, Status.OK)
    assert campaign.history.incumbent() == campaign.ledger.get(exp_id).commit_sha
    assert campaign.ledger.meta()["seeds"] == [3]


def test_syntax_error_is_invalid_without_running(campaign: Campaign) -> None:
    exp_id, record = campaign.run("def broken(:\n    pass\n", role="baseline", description="syntax", seed=0)
    assert record.status is Status.INVALID
    assert "SyntaxError" in record.error and "line 1" in record.error
    assert not Path(record.log_path).exists()  # no process was started
    assert_consistent(campaign, exp_id, Status.INVALID)


def test_exception_is_crashed_with_the_exception_line(campaign: Campaign) -> None:
    exp_id, record = campaign.run(candidate("crash.py"), role="baseline", description="crash", seed=0)
    assert record.status is Status.CRASHED
    assert "RuntimeError: boom from the candidate" in record.error
    assert "boom" in record.log_tail
    assert_consistent(campaign, exp_id, Status.CRASHED)


def test_timeout_kills_process_group_and_leaves_no_orphan(campaign: Campaign) -> None:
    campaign.preset = dataclasses.replace(campaign.preset, startup_allowance_s=1.0)  # deadline 4 s
    started = time.perf_counter()
    exp_id, record = campaign.run(candidate("hang.py"), role="baseline", description="hang", seed=0)
    assert record.status is Status.TIMED_OUT
    assert time.perf_counter() - started < 15
    child_pid = int((Path(record.workspace) / "child.pid").read_text())
    deadline = time.time() + 5
    while _alive(child_pid) and time.time() < deadline:
        time.sleep(0.1)
    assert not _alive(child_pid), "the candidate's child survived the kill"
    assert_consistent(campaign, exp_id, Status.TIMED_OUT)


def test_non_finite_loss_is_nan(campaign: Campaign) -> None:
    exp_id, record = campaign.run(candidate("nan_loss.py"), role="baseline", description="nan", seed=0)
    assert record.status is Status.NAN
    assert_consistent(campaign, exp_id, Status.NAN)


def test_missing_checkpoint_is_recorded_and_fake_summary_is_not_a_score(campaign: Campaign) -> None:
    exp_id, record = campaign.run(candidate("no_checkpoint.py"), role="baseline", description="nockpt", seed=0)
    assert record.status is Status.NO_CHECKPOINT
    assert record.val_bpb is None  # the printed "val_bpb: 0.1" is ignored
    assert campaign.ledger.get(exp_id).val_bpb is None
    assert_consistent(campaign, exp_id, Status.NO_CHECKPOINT)


def test_model_peeking_at_future_tokens_is_rejected_as_noncausal(campaign: Campaign) -> None:
    exp_id, record = campaign.run(candidate("peeks_future.py"), role="baseline", description="peek", seed=0)
    assert record.status is Status.NONCAUSAL
    assert record.val_bpb is None
    assert "positions < 1" in record.error
    assert campaign.history.incumbent() is None  # a rejected model never becomes the incumbent
    assert_consistent(campaign, exp_id, Status.NONCAUSAL)


def test_tampered_data_file_is_refused(tmp_path: Path, smoke_cache: Path, smoke_preset) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(dataset_dir(smoke_preset, smoke_cache), dataset_dir(smoke_preset, cache))
    with Campaign.open(tmp_path / "run", "cpu-smoke", cache) as campaign:
        val = dataset_dir(smoke_preset, cache) / "val.bin"
        data = bytearray(val.read_bytes())
        data[100] ^= 0xFF
        val.write_bytes(bytes(data))
        exp_id, record = campaign.run(candidate("tiny_ok.py"), role="baseline", description="tamper", seed=0)
        assert record.status is Status.INTEGRITY_FAILED
        assert "data/val.bin changed" in record.error
        assert record.val_bpb is None
        assert_consistent(campaign, exp_id, Status.INTEGRITY_FAILED)
    with pytest.raises(UserError, match="frozen environment changed"):
        Campaign.open(tmp_path / "run", "cpu-smoke", cache)


def test_changed_frozen_code_hash_is_refused_with_the_file_named(campaign: Campaign) -> None:
    manifest = json.loads(campaign.manifest_path.read_text())
    manifest["code/evaluator.py"] = "0" * 64  # as if evaluator.py had been edited after the campaign started
    campaign.manifest_path.write_text(json.dumps(manifest))
    exp_id, record = campaign.run(candidate("tiny_ok.py"), role="baseline", description="code", seed=0)
    assert record.status is Status.INTEGRITY_FAILED
    assert "code/evaluator.py" in record.error
    assert_consistent(campaign, exp_id, Status.INTEGRITY_FAILED)


def test_campaign_refuses_a_different_preset(tmp_path: Path, smoke_cache: Path) -> None:
    with Campaign.open(tmp_path / "run", "cpu-smoke", smoke_cache):
        pass
    with pytest.raises(UserError, match="uses preset 'cpu-smoke'"):
        Campaign.open(tmp_path / "run", "cpu-tiny", smoke_cache)


def test_recover_marks_running_rows_interrupted(campaign: Campaign) -> None:
    exp_id = campaign.ledger.start_experiment(role="baseline", source_hash="x", description="killed controller")
    assert campaign.recover() == 1
    assert campaign.ledger.get(exp_id).status is Status.INTERRUPTED
    assert os.path.isdir(campaign.run_dir / "history")
