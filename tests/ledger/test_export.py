"""Guarantees of results.tsv: the reference columns and vocabulary, one clean line per finished experiment."""

from __future__ import annotations

from pathlib import Path

from autoresearch_rl.experiment import ExperimentRecord, Status
from autoresearch_rl.ledger import Ledger, write_results_tsv


def add(ledger: Ledger, role: str, record: ExperimentRecord, status: Status | None = None, description: str = "d") -> int:
    exp = ledger.start_experiment(role=role, source_hash="h", description=description)
    ledger.set_commit(exp, f"{exp:07d}abcdef0123456789")
    ledger.finish_experiment(exp, record, status=status)
    return exp


def test_results_tsv_has_reference_columns(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as led:
        add(led, "baseline", ExperimentRecord(status=Status.OK, val_bpb=0.9979, peak_memory_mb=45060.2), description="baseline")
        add(led, "candidate", ExperimentRecord(status=Status.OK, val_bpb=0.9932, peak_memory_mb=44200.0), Status.KEPT, "increase LR to 0.04")
        add(led, "candidate", ExperimentRecord(status=Status.OK, val_bpb=1.005), Status.DISCARDED, "switch to GeLU")
        add(led, "candidate", ExperimentRecord(status=Status.CRASHED, error="OOM"), description="double width")
        add(led, "calibration", ExperimentRecord(status=Status.OK, val_bpb=0.998))
        led.start_experiment(role="candidate", source_hash="h", description="still running")
        write_results_tsv(led, tmp_path / "results.tsv")
    lines = (tmp_path / "results.tsv").read_text().splitlines()
    assert lines[0] == "commit\tval_bpb\tmemory_gb\tstatus\tdescription"
    assert lines[1:] == [
        "0000001\t0.997900\t44.0\tbaseline\tbaseline",
        "0000002\t0.993200\t43.2\tkeep\tincrease LR to 0.04",
        "0000003\t1.005000\t0.0\tdiscard\tswitch to GeLU",
        "0000004\t0.000000\t0.0\tcrashed\tdouble width",
        "0000005\t0.998000\t0.0\tok\td",
    ]


def test_a_candidate_appears_once_in_its_final_status(tmp_path: Path) -> None:
    """Scored but not yet decided: left out, so no row is written `ok` and later rewritten `keep`."""
    with Ledger.open(tmp_path) as led:
        exp = add(led, "candidate", ExperimentRecord(status=Status.OK, val_bpb=0.99), description="wider")
        write_results_tsv(led, tmp_path / "results.tsv")
        assert (tmp_path / "results.tsv").read_text().splitlines()[1:] == []
        led.decide(exp, Status.KEPT, 1.0)
        write_results_tsv(led, tmp_path / "results.tsv")
    assert (tmp_path / "results.tsv").read_text().splitlines()[1:] == ["0000001\t0.990000\t0.0\tkeep\twider"]


def test_failures_use_their_lowercase_status(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as led:
        for status in (Status.TIMED_OUT, Status.NAN, Status.INVALID_EDIT, Status.INTERRUPTED):
            add(led, "candidate", ExperimentRecord(status=status))
        write_results_tsv(led, tmp_path / "results.tsv")
    statuses = [line.split("\t")[3] for line in (tmp_path / "results.tsv").read_text().splitlines()[1:]]
    assert statuses == ["timed_out", "nan", "invalid_edit", "interrupted"]


def test_description_never_breaks_the_table(tmp_path: Path) -> None:
    with Ledger.open(tmp_path) as led:
        add(led, "candidate", ExperimentRecord(status=Status.OK, val_bpb=1.0), Status.KEPT, "a\tb\nc\r\nd")
        write_results_tsv(led, tmp_path / "results.tsv")
    lines = (tmp_path / "results.tsv").read_text().splitlines()
    assert len(lines) == 2 and lines[1].split("\t") == ["0000001", "1.000000", "0.0", "keep", "a b c d"]


def test_rewrite_replaces_atomically_without_leftovers(tmp_path: Path) -> None:
    out = tmp_path / "results.tsv"
    out.write_text("old\n")
    with Ledger.open(tmp_path / "run") as led:
        write_results_tsv(led, out)
    assert out.read_text() == "commit\tval_bpb\tmemory_gb\tstatus\tdescription\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.tsv", "run"]
