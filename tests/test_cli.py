"""End to end through the real `arl` console script, as a user would type it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ARL = str(Path(sys.executable).with_name("arl"))
CANDIDATES = Path(__file__).parent / "runner" / "candidates"


def arl(*args: str, cache: Path, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "ARL_HOME": str(cache)}
    return subprocess.run([ARL, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def cli_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-cache")


def test_prepare_baseline_status_end_to_end(cli_cache: Path, tmp_path: Path) -> None:
    prepared = arl("prepare", "--preset", "cpu-smoke", cache=cli_cache, cwd=tmp_path)
    assert prepared.returncode == 0, prepared.stderr
    assert (cli_cache / "kjv-bpe4096" / "meta.json").is_file()

    run = arl("baseline", "--preset", "cpu-smoke", "--seed", "7", "--run-dir", "camp", cache=cli_cache, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    last = run.stdout.strip().splitlines()[-1]
    assert last.startswith("val_bpb: ")
    bpb = float(last.split()[1])
    assert "training" in run.stderr and "evaluation" in run.stderr

    status = arl("status", "--run-dir", "camp", "--json", cache=cli_cache, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    summary = json.loads(status.stdout)
    assert summary["counts"] == {"OK": 1}
    assert summary["baseline_val_bpb"] == pytest.approx(bpb, abs=1e-6)
    assert summary["best_val_bpb"] == pytest.approx(bpb, abs=1e-6)
    assert summary["preset"] == "cpu-smoke"
    assert (tmp_path / "camp" / "results.tsv").read_text().startswith("commit\tval_bpb\tmemory_gb\tstatus\tdescription")
    human = arl("status", "--run-dir", "camp", cache=cli_cache, cwd=tmp_path)
    assert "baseline val_bpb" in human.stdout


def test_baseline_of_a_failing_source_prints_its_status(cli_cache: Path, tmp_path: Path) -> None:
    arl("prepare", "--preset", "cpu-smoke", cache=cli_cache, cwd=tmp_path)
    run = arl("baseline", "--preset", "cpu-smoke", "--source", str(CANDIDATES / "crash.py"), "--run-dir", "c",
              cache=cli_cache, cwd=tmp_path)
    assert run.returncode == 1
    assert run.stdout.strip().splitlines()[-1] == "status: CRASHED"


def _user_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_unknown_preset_is_one_line_exit_2(cli_cache: Path, tmp_path: Path) -> None:
    _user_error(arl("prepare", "--preset", "nope", cache=cli_cache, cwd=tmp_path), "unknown preset 'nope'", "cpu-tiny")


def test_missing_data_says_to_prepare(tmp_path: Path) -> None:
    _user_error(arl("baseline", "--run-dir", "x", cache=tmp_path / "empty", cwd=tmp_path), "arl prepare")


def test_unwritable_run_dir_is_one_line(cli_cache: Path, tmp_path: Path) -> None:
    arl("prepare", "--preset", "cpu-smoke", cache=cli_cache, cwd=tmp_path)
    (tmp_path / "afile").write_text("not a directory")
    _user_error(arl("baseline", "--preset", "cpu-smoke", "--run-dir", "afile/run", cache=cli_cache, cwd=tmp_path), "afile/run")


def test_corrupt_ledger_is_one_line(cli_cache: Path, tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "ledger.sqlite").write_bytes(b"this is not sqlite" * 100)
    _user_error(arl("status", "--run-dir", "bad", cache=cli_cache, cwd=tmp_path), "corrupt")


def test_status_of_missing_campaign_is_one_line(cli_cache: Path, tmp_path: Path) -> None:
    _user_error(arl("status", "--run-dir", "none", cache=cli_cache, cwd=tmp_path), "no campaign")


def test_missing_source_file_is_one_line(cli_cache: Path, tmp_path: Path) -> None:
    _user_error(arl("baseline", "--source", "nothere.py", cache=cli_cache, cwd=tmp_path), "nothere.py")
