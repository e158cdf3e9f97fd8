"""Progress lines: parsed from a finished log and followed live in a growing one (ProgressTail)."""

from __future__ import annotations

from pathlib import Path

from autoresearch_rl.logparse import ProgressPoint, ProgressTail, parse_log, progress_point

LINE = "step {:05d} | elapsed {:.2f}s | progress {:.1f}% | loss {:.6f} | tokens {} | tok/s 3600\n"


def test_a_runtime_progress_line_gives_every_field() -> None:
    point = progress_point(LINE.format(12, 3.41, 17.1, 5.123456, 123456).rstrip("\n"))
    assert point == ProgressPoint(step=12, elapsed=3.41, loss=5.123456, percent=17.1, tokens=123456)


def test_lines_without_percent_or_tokens_still_parse() -> None:
    assert progress_point("step 00003 | elapsed 1.00s | loss 4.5") == ProgressPoint(3, 1.0, 4.5)
    assert progress_point("step 00003 | loss nan | non-finite loss, stopping") is None
    assert progress_point("params 1,835,008 | batch 1x16x256") is None


def test_parse_log_reads_tokens_too(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text(LINE.format(0, 0.5, 10.0, 8.3, 4096) + LINE.format(1, 1.0, 20.0, 7.9, 8192) + "---\nsteps: 2\n")
    parsed = parse_log(log)
    assert [p.tokens for p in parsed.progress] == [4096, 8192] and parsed.summary == {"steps": 2}


def test_the_tail_returns_only_lines_appended_since_the_last_call(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    tail = ProgressTail(log)
    assert tail.read_new() == []  # not created yet
    log.write_text("params 1,835,008 | batch 1x16x256 | device cpu\n" + LINE.format(0, 0.5, 10.0, 8.3, 4096))
    assert [p.step for p in tail.read_new()] == [0]
    assert tail.read_new() == []
    with open(log, "a") as f:
        f.write(LINE.format(1, 1.0, 20.0, 7.9, 8192) + LINE.format(2, 1.5, 30.0, 7.5, 12288))
    assert [p.step for p in tail.read_new()] == [1, 2]
    assert tail.offset == log.stat().st_size


def test_a_partial_last_line_waits_for_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    line = LINE.format(7, 2.25, 45.0, 6.5, 30000)
    log.write_text(line[:30])  # cut inside the elapsed field: parsed now it would be wrong
    tail = ProgressTail(log)
    assert tail.read_new() == []
    with open(log, "a") as f:
        f.write(line[30:-1])  # everything but the newline: the loss could still grow digits
    assert tail.read_new() == []
    with open(log, "a") as f:
        f.write("\n")
    assert tail.read_new() == [ProgressPoint(7, 2.25, 6.5, 45.0, 30000)]


def test_a_tail_can_start_past_an_old_log(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text(LINE.format(0, 0.5, 10.0, 9.9, 1))  # a previous run's line
    tail = ProgressTail(log, offset=log.stat().st_size)
    with open(log, "a") as f:
        f.write(LINE.format(0, 0.4, 8.0, 8.3, 4096))
    assert [p.loss for p in tail.read_new()] == [8.3]


def test_a_truncated_log_is_read_again_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text(LINE.format(0, 0.5, 10.0, 8.3, 4096) * 3)
    tail = ProgressTail(log)
    assert len(tail.read_new()) == 3
    log.write_text(LINE.format(5, 2.0, 40.0, 6.0, 20000))
    assert [p.step for p in tail.read_new()] == [5]


def test_reads_are_bounded_and_resume(tmp_path: Path) -> None:
    log = tmp_path / "train.log"
    log.write_text("".join(LINE.format(i, 0.1 * i, i, 8.0, i) for i in range(100)))
    tail = ProgressTail(log, max_read=1000)
    steps: list[int] = []
    while chunk := tail.read_new():
        steps += [p.step for p in chunk]
    steps += [p.step for p in tail.read_new()]
    assert steps == list(range(100))
