"""Shard fetching and streaming, exercised against local directories and a loopback HTTP server (no internet)."""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from autoresearch_rl.env.shards import (
    CLIMBMIX_BASE_URL,
    ShardSource,
    climbmix_source,
    download_shards,
    is_valid_shard,
    iter_texts,
    write_parquet_shard,
)
from autoresearch_rl.errors import UserError

TRAIN, VAL, TEST = (0, 1, 2), 9, 8


def docs_of(index: int) -> list[str]:
    return [f"shard {index} document {i} ü" for i in range(5)]


@pytest.fixture
def origin(tmp_path: Path) -> Path:
    """A directory laid out like the dataset hub: one small shard per index."""
    root = tmp_path / "origin"
    for index in (*TRAIN, VAL, TEST):
        write_parquet_shard(root / f"shard_{index:05d}.parquet", docs_of(index))
    return root


def source_at(base: str, train: tuple[int, ...] = TRAIN) -> ShardSource:
    return ShardSource(base=base, train_indices=train, val_index=VAL, test_index=TEST)


def read_all(path: Path) -> list[str]:
    return list(iter_texts([path]))


def test_download_from_local_directory_fetches_all_splits(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cache"
    paths = download_shards(source_at(str(origin)), dest)
    assert [p.name for p in paths["train"]] == ["shard_00000.parquet", "shard_00001.parquet", "shard_00002.parquet"]
    assert paths["val"] == [dest / "shard_00009.parquet"]
    assert paths["test"] == [dest / "shard_00008.parquet"]
    for index, path in zip((*TRAIN, VAL, TEST), paths["train"] + paths["val"] + paths["test"]):
        assert read_all(path) == docs_of(index)
    assert not list(dest.glob("*.tmp"))


def test_download_from_file_url(origin: Path, tmp_path: Path) -> None:
    source = source_at(origin.as_uri())
    assert source.url(9) == f"{origin.as_uri()}/shard_00009.parquet"
    paths = download_shards(source, tmp_path / "cache")
    assert read_all(paths["val"][0]) == docs_of(VAL)


def test_existing_valid_shard_is_not_refetched(origin: Path, tmp_path: Path) -> None:
    dest = tmp_path / "cache"
    download_shards(source_at(str(origin)), dest)
    kept = dest / "shard_00001.parquet"
    os.utime(kept, ns=(1_000_000_000, 1_000_000_000))  # an mtime no fresh write could produce
    lines: list[str] = []
    download_shards(source_at(str(origin)), dest, progress=lines.append)
    assert kept.stat().st_mtime_ns == 1_000_000_000
    assert sorted(lines) == sorted(f"shard_{i:05d}.parquet: already present" for i in (*TRAIN, VAL, TEST))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:100]), id="truncated"),
        pytest.param(lambda p: p.write_bytes(b""), id="empty"),
        pytest.param(lambda p: write_parquet_shard(p, ["x"], text_column="body"), id="wrong-column"),
    ],
)
def test_corrupt_shard_is_refetched(origin: Path, tmp_path: Path, damage: Callable[[Path], object]) -> None:
    dest = tmp_path / "cache"
    download_shards(source_at(str(origin)), dest)
    broken = dest / "shard_00002.parquet"
    damage(broken)
    (dest / "shard_00002.parquet.tmp").write_bytes(b"leftover of a killed download")
    assert not is_valid_shard(broken)
    download_shards(source_at(str(origin)), dest)
    assert read_all(broken) == docs_of(2)
    assert not (dest / "shard_00002.parquet.tmp").exists()


def test_missing_shard_raises_user_error(origin: Path, tmp_path: Path) -> None:
    source = source_at(str(origin), train=(0, 1, 2, 3))
    with pytest.raises(UserError) as info:
        download_shards(source, tmp_path / "cache")
    message = str(info.value)
    assert "\n" not in message
    assert source.url(3) in message and "--data DIR" in message


def test_source_file_that_is_not_parquet_raises_user_error(origin: Path, tmp_path: Path) -> None:
    (origin / "shard_00001.parquet").write_text("<html>not a shard</html>")
    with pytest.raises(UserError, match="not a parquet file"):
        download_shards(source_at(str(origin)), tmp_path / "cache")


def test_iter_texts_streams_every_document_in_order(tmp_path: Path) -> None:
    first = write_parquet_shard(tmp_path / "a.parquet", [f"a{i}" for i in range(10)], row_group_rows=3)
    second = write_parquet_shard(tmp_path / "b.parquet", [f"b{i}" for i in range(4)], row_group_rows=3)
    assert pq.ParquetFile(first).num_row_groups == 4  # several groups, so streaming is really exercised
    stream = iter_texts([first, second], batch_rows=2)
    assert isinstance(stream, Iterator)
    assert next(stream) == "a0"  # lazy: the first document arrives before the rest is read
    assert list(stream) == [f"a{i}" for i in range(1, 10)] + [f"b{i}" for i in range(4)]


def test_iter_texts_reports_missing_column(tmp_path: Path) -> None:
    path = write_parquet_shard(tmp_path / "a.parquet", ["x"], text_column="body")
    with pytest.raises(UserError, match="no column 'text'"):
        list(iter_texts([path]))


def test_write_parquet_shard_failure_leaves_previous_file_intact(tmp_path: Path) -> None:
    path = write_parquet_shard(tmp_path / "a.parquet", ["old"])
    with pytest.raises(Exception):
        write_parquet_shard(path, ["new", 3])  # type: ignore[list-item]  # not a string: the write fails
    assert read_all(path) == ["old"]
    assert not list(tmp_path.glob("*.tmp"))


def test_test_shard_never_overlaps_training() -> None:
    with pytest.raises(ValueError, match="test shard 1 is also a training shard"):
        ShardSource(base="/data", train_indices=(0, 1), val_index=5, test_index=1)
    with pytest.raises(ValueError, match="validation shard"):
        ShardSource(base="/data", train_indices=(0, 1), val_index=0, test_index=4)
    with pytest.raises(ValueError, match="must differ"):
        ShardSource(base="/data", train_indices=(0, 1), val_index=4, test_index=4)
    for n in (1, 10, 6541):
        source = climbmix_source(n)
        assert source.test_index == source.val_index - 1
        assert source.test_index not in source.train_indices
        assert source.val_index not in source.train_indices


def test_climbmix_source_names_shards_like_the_reference() -> None:
    source = climbmix_source()
    assert source.train_indices == tuple(range(10))
    assert source.url(source.val_index) == f"{CLIMBMIX_BASE_URL}/shard_06542.parquet"
    assert source.url(source.test_index).endswith("/shard_06541.parquet")
    with pytest.raises(UserError):
        climbmix_source(6542)  # would swallow the test shard


class _FlakyHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files, but answers the first `failures` GETs of each path with 503."""

    failures = 1
    seen: Counter[str]
    lock: threading.Lock

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        with self.lock:
            self.seen[self.path] += 1
            fail = self.seen[self.path] <= self.failures
        if fail:
            self.send_error(503, "try again")
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


Serve = Callable[[Path, int], tuple[str, Counter[str]]]


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Serve]:
    """Start a loopback server over a directory; returns (base URL, per-path request counter)."""
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "*")
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(root: Path, failures: int) -> tuple[str, Counter[str]]:
        handler = type("Handler", (_FlakyHandler,), {"failures": failures, "seen": Counter(), "lock": threading.Lock()})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(root)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}", handler.seen

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_http_download_with_retry(origin: Path, tmp_path: Path, serve: Serve) -> None:
    base, seen = serve(origin, 1)
    lines: list[str] = []
    paths = download_shards(source_at(base), tmp_path / "cache", backoff_s=0.01, progress=lines.append)
    for index, path in zip((*TRAIN, VAL, TEST), paths["train"] + paths["val"] + paths["test"]):
        assert read_all(path) == docs_of(index)
        assert seen[f"/shard_{index:05d}.parquet"] == 2  # one 503, one success
    assert any("attempt 1/5 failed" in line for line in lines)


def test_http_gives_up_after_retries_with_user_error(origin: Path, tmp_path: Path, serve: Serve) -> None:
    base, seen = serve(origin, 100)
    with pytest.raises(UserError, match="after 3 attempts"):
        download_shards(source_at(base, train=(0,)), tmp_path / "cache", retries=3, backoff_s=0.001, workers=1)
    assert seen["/shard_00000.parquet"] == 3


def test_http_missing_shard_raises_user_error_without_retry(origin: Path, tmp_path: Path, serve: Serve) -> None:
    base, seen = serve(origin, 0)
    source = source_at(base, train=(0, 7))
    with pytest.raises(UserError, match="not found") as info:
        download_shards(source, tmp_path / "cache", backoff_s=0.001)
    assert source.url(7) in str(info.value)
    assert seen["/shard_00007.parquet"] == 1
