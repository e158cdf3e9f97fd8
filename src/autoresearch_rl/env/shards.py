"""Parquet text shards for the `gpu-5min` preset: fetch them once, resumably, and stream their documents.

Naming mirrors karpathy/autoresearch's `prepare.py`, so a cache built by either tool serves both: ClimbMix shards
`shard_{index:05d}.parquet` under the `karpathy/climbmix-400b-shuffle` dataset, the first 10 for training, the last
shard (06542) pinned for validation. We add a held-out test shard (06541, just before validation) that rewards never
see, so the agent cannot overfit the validation shard unnoticed.

Usage:
    paths = download_shards(climbmix_source(), cache_dir / "shards", progress=print)
    for doc in iter_texts(paths["train"]):
        ...

A source may also be a local directory or a `file://` URL holding files with the same names (offline machines,
users who bring their own data via `arl prepare --data DIR`).
"""

from __future__ import annotations

import http.client
import logging
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from autoresearch_rl.errors import UserError

logger = logging.getLogger(__name__)

CLIMBMIX_BASE_URL = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main"
CLIMBMIX_LAST_SHARD = 6542  # shard_06542.parquet is the last one; the reference pins it for validation
DEFAULT_NUM_TRAIN_SHARDS = 10  # the reference's `prepare.py --num-shards` default
CHUNK_BYTES = 1 << 20  # stream downloads 1 MiB at a time so a multi-GB shard never sits in memory
DOWNLOAD_WORKERS = 4  # a few connections in parallel; more mostly gets throttled by the hub
HTTP_TIMEOUT_S = 30.0
_RETRYABLE_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})
_FIX_HINT = "pass --data DIR pointing at a directory of parquet shards with a text column"


@dataclass(frozen=True, kw_only=True)
class ShardSource:
    """Where the shards live and which of them form each split."""

    base: str
    """An http(s) URL, a file:// URL, or a local directory holding the shard files."""
    pattern: str = "shard_{index:05d}.parquet"
    """File name of shard `index`, formatted with `str.format(index=...)`."""
    train_indices: tuple[int, ...]
    """Shards used for training, in reading order."""
    val_index: int
    """The shard that scores candidates (val_bpb)."""
    test_index: int
    """The held-out shard used only for final reports; must differ from every training and validation shard."""
    text_column: str = "text"
    """Column that holds one document per row."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "train_indices", tuple(self.train_indices))
        if not self.train_indices:
            raise ValueError("ShardSource needs at least one training shard")
        if len(set(self.train_indices)) != len(self.train_indices):
            raise ValueError(f"ShardSource train_indices has duplicates: {self.train_indices}")
        if min(self.train_indices + (self.val_index, self.test_index)) < 0:
            raise ValueError("ShardSource shard indices must be non-negative")
        if self.val_index in self.train_indices:
            raise ValueError(f"validation shard {self.val_index} is also a training shard; pick another val_index")
        if self.test_index in self.train_indices:
            raise ValueError(
                f"test shard {self.test_index} is also a training shard; the held-out split must stay unseen"
            )
        if self.test_index == self.val_index:
            raise ValueError(f"test shard and validation shard are both {self.val_index}; they must differ")
        if "{index" not in self.pattern:
            raise ValueError(f"shard pattern {self.pattern!r} must contain an '{{index}}' field")

    def filename(self, index: int) -> str:
        """File name of shard `index`, identical at the source and in the cache."""
        return self.pattern.format(index=index)

    def url(self, index: int) -> str:
        """Where shard `index` is fetched from (a URL, or a plain path for a local directory)."""
        name = self.filename(index)
        if _is_url(self.base):
            return f"{self.base.rstrip('/')}/{urllib.parse.quote(name)}"
        return str(Path(self.base).expanduser() / name)

    def splits(self) -> dict[str, tuple[int, ...]]:
        """Shard indices per split, in the order `download_shards` returns them."""
        return {"train": self.train_indices, "val": (self.val_index,), "test": (self.test_index,)}


def climbmix_source(num_train_shards: int = DEFAULT_NUM_TRAIN_SHARDS, base: str = CLIMBMIX_BASE_URL) -> ShardSource:
    """The reference's ClimbMix layout: shards 0..n-1 train, the last shard validates, the one before it tests."""
    test_index = CLIMBMIX_LAST_SHARD - 1
    if not 1 <= num_train_shards <= test_index:
        raise UserError(f"--num-shards must be between 1 and {test_index}, got {num_train_shards}")
    return ShardSource(
        base=base,
        train_indices=tuple(range(num_train_shards)),
        val_index=CLIMBMIX_LAST_SHARD,
        test_index=test_index,
    )


def download_shards(
    source: ShardSource,
    dest: Path,
    *,
    retries: int = 5,
    backoff_s: float = 1.0,
    workers: int = DOWNLOAD_WORKERS,
    timeout_s: float = HTTP_TIMEOUT_S,
    progress: Callable[[str], None] | None = None,
) -> dict[str, list[Path]]:
    """Make every shard of `source` present and readable under `dest`; return the local paths per split.

    Safe to re-run after a kill: files that open as parquet with the text column are kept untouched, anything else is
    fetched again to `NAME.tmp` and moved into place atomically. Network errors are retried `retries` times with
    exponential back-off (`backoff_s`, 2x, 4x, ...). `progress` receives one line per shard, possibly from worker
    threads. A shard absent at the source raises `UserError`.
    """
    if retries < 1:
        raise ValueError(f"retries must be >= 1, got {retries}")
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create shard directory {dest}: {exc.strerror}; choose a writable directory") from exc

    report = progress or (lambda line: None)
    jobs = [(split, index) for split, indices in source.splits().items() for index in indices]
    fetch = _Fetcher(source, dest, retries=retries, backoff_s=backoff_s, timeout_s=timeout_s, report=report)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs))), thread_name_prefix="shards") as pool:
        futures: list[tuple[str, Future[Path]]] = [(split, pool.submit(fetch, index)) for split, index in jobs]
        out: dict[str, list[Path]] = {split: [] for split in source.splits()}
        try:
            for split, future in futures:
                out[split].append(future.result())
        except BaseException:
            for _, future in futures:
                future.cancel()  # don't start shards nobody will use; running ones finish their current file
            raise
    return out


def iter_texts(paths: Sequence[Path], text_column: str = "text", batch_rows: int = 1024) -> Iterator[str]:
    """Yield every document of `paths` in file and row order, holding at most `batch_rows` rows in Python at once.

    Null rows are skipped: a missing document has no bytes to predict.
    """
    for path in paths:
        with pq.ParquetFile(path) as pf:
            if text_column not in pf.schema_arrow.names:
                raise UserError(f"{path} has no column {text_column!r}; rewrite it with a {text_column!r} column")
            for batch in pf.iter_batches(batch_size=batch_rows, columns=[text_column]):
                for text in batch.column(0).to_pylist():
                    if text is not None:
                        yield text


def write_parquet_shard(
    path: Path,
    texts: Sequence[str],
    *,
    text_column: str = "text",
    row_group_rows: int | None = None,
) -> Path:
    """Write `texts` as a one-column parquet shard, atomically, so a reader never sees half a file.

    `row_group_rows` caps rows per row group (small groups keep streaming memory low; tests use it to make several).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({text_column: pa.array(list(texts), type=pa.string())})
    tmp = _tmp_path(path)
    try:
        pq.write_table(table, tmp, row_group_size=row_group_rows)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)
    return path


def is_valid_shard(path: Path, text_column: str = "text") -> bool:
    """Cheap completeness check: the parquet footer parses and declares a string `text_column`.

    A truncated download loses its footer, so this catches partial files without reading the data pages.
    """
    if not path.is_file():
        return False
    try:
        with pq.ParquetFile(path) as pf:
            schema = pf.schema_arrow
    except (OSError, pa.ArrowException):
        return False
    if text_column not in schema.names:
        return False
    kind = schema.field(text_column).type
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


# ---------------------------------------------------------------------------------------------------------------------
# One shard


class _Retryable(Exception):
    """A transient failure (network, 5xx, short read) worth another attempt."""


class _Fetcher:
    """Fetches one shard into the cache; a callable so the thread pool can share its settings."""

    def __init__(
        self,
        source: ShardSource,
        dest: Path,
        *,
        retries: int,
        backoff_s: float,
        timeout_s: float,
        report: Callable[[str], None],
    ) -> None:
        self.source = source
        self.dest = dest
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.report = report

    def __call__(self, index: int) -> Path:
        target = self.dest / self.source.filename(index)
        column = self.source.text_column
        if is_valid_shard(target, column):
            self.report(f"{target.name}: already present")
            return target
        if target.exists():
            logger.warning("%s is incomplete or unreadable; fetching it again", target)
        url = self.source.url(index)
        if _is_url(url) and not url.startswith("file:"):
            self._download(url, target)
        else:
            self._copy(_local_path(url), url, target)
        _fsync_dir(self.dest)
        self.report(f"{target.name}: fetched")
        return target

    def _copy(self, src: Path, url: str, target: Path) -> None:
        """Local sources have no transient failures, so a bad file is reported at once rather than retried."""
        if not src.is_file():
            raise UserError(f"shard {url} not found; {_FIX_HINT}")
        if not is_valid_shard(src, self.source.text_column):
            column = self.source.text_column
            raise UserError(f"{src} is not a parquet file with a {column!r} string column; {_FIX_HINT}")
        with open(src, "rb") as fin:
            self._write_atomically(fin, target, expected_bytes=src.stat().st_size)

    def _download(self, url: str, target: Path) -> None:
        last: Exception | None = None
        for attempt in range(1, self.retries + 1):
            try:
                request = urllib.request.Request(url, headers={"User-Agent": "autoresearch-rl"})
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    length = response.headers.get("Content-Length")
                    self._write_atomically(response, target, expected_bytes=int(length) if length else None)
                return
            except urllib.error.HTTPError as exc:
                exc.close()  # an HTTPError holds the open response; release the socket now
                if exc.code not in _RETRYABLE_HTTP:
                    what = "not found" if exc.code in (404, 410) else f"refused with HTTP {exc.code}"
                    raise UserError(f"shard {url} {what}; check the preset's shard source or {_FIX_HINT}") from exc
                last = exc
            except (_Retryable, OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, short reads
                last = exc
            self.report(f"{target.name}: attempt {attempt}/{self.retries} failed ({last})")
            if attempt < self.retries:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise UserError(
            f"could not download {url} after {self.retries} attempts ({last}); check the network or {_FIX_HINT}"
        )

    def _write_atomically(self, stream: BinaryIO, target: Path, *, expected_bytes: int | None) -> None:
        """Stream to `NAME.tmp`, fsync, then rename, so `target` is either absent, old, or complete."""
        tmp = _tmp_path(target)
        try:
            written = 0
            with open(tmp, "wb") as out:
                while chunk := stream.read(CHUNK_BYTES):
                    out.write(chunk)
                    written += len(chunk)
                out.flush()
                os.fsync(out.fileno())
            if expected_bytes is not None and written != expected_bytes:
                raise _Retryable(f"short read: {written} of {expected_bytes} bytes")
            if not is_valid_shard(tmp, self.source.text_column):
                raise _Retryable(f"fetched file is not a parquet shard with a {self.source.text_column!r} column")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)


def _tmp_path(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def _is_url(base: str) -> bool:
    return urllib.parse.urlparse(base).scheme in ("http", "https", "file")


def _local_path(url_or_path: str) -> Path:
    parsed = urllib.parse.urlparse(url_or_path)
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    return Path(url_or_path)


def _fsync_dir(directory: Path) -> None:
    """Persist a rename; best effort, since some file systems (and Windows) refuse to open directories."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
