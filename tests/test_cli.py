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


def test_edits_json_lists_operators_with_masks(tmp_path: Path) -> None:
    result = subprocess.run([ARL, "edits", "--json"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {"operator", "kind", "args", "applicable"} <= set(rows[0])
    kinds = {row["kind"] for row in rows}
    assert kinds == {"hyperparameter", "structural"}
    assert sum(row["kind"] == "structural" for row in rows) >= 10
    lr = next(row for row in rows if row["operator"] == "scale:MATRIX_LR")
    assert set(lr["applicable"]) <= set(lr["args"]) and lr["applicable"]
    heads = next(row for row in rows if row["operator"] == "set:HEAD_DIM")
    assert "32" not in heads["applicable"]  # the current value is masked


def test_apply_prints_the_diff_and_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "edited.py"
    result = subprocess.run([ARL, "apply", "scale:MATRIX_LR", "x2", "--out", str(out)], capture_output=True,
                            text=True, cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "-MATRIX_LR = 0.02" in result.stdout and "+MATRIX_LR = 0.04" in result.stdout
    assert "MATRIX_LR = 0.04  # search:" in out.read_text()
    again = subprocess.run([ARL, "edits", "--source", str(out), "--json"], capture_output=True, text=True, timeout=60)
    lr = next(row for row in json.loads(again.stdout) if row["operator"] == "scale:MATRIX_LR")
    assert lr["current"] == 0.04


def test_apply_of_a_masked_action_is_one_line(tmp_path: Path) -> None:
    _user_error(subprocess.run([ARL, "apply", "set:HEAD_DIM", "32"], capture_output=True, text=True, cwd=tmp_path,
                               timeout=60), "not applicable")


def test_edits_on_a_broken_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("def f(:\n")
    _user_error(subprocess.run([ARL, "edits", "--source", "bad.py"], capture_output=True, text=True, cwd=tmp_path,
                               timeout=60), "does not compile")
