"""Candidate history: every train.py the campaign ran, as commits in a git repository at `<run_dir>/history/`.

Branch `research` is the chain of kept versions and its working tree holds the incumbent
`train.py`, so `git log research` in the run directory is the story of the campaign. Every
candidate, kept or not, is a commit whose parent is the incumbent it was derived from, pinned by
`refs/experiments/<id>` so discarded ones stay reachable (`git diff <parent> refs/experiments/7`).

Only plumbing is used (`hash-object`, `mktree`, `commit-tree`, `update-ref`, `read-tree`) with a
fixed identity and the user's git configuration ignored, so it works on a bare machine with no
`git config` and no hooks or signing can interfere.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from autoresearch_rl.errors import UserError

log = logging.getLogger(__name__)

HISTORY_DIR = "history"
BRANCH = "research"
FILE_NAME = "train.py"
_IDENTITY = {
    "GIT_AUTHOR_NAME": "autoresearch-rl",
    "GIT_AUTHOR_EMAIL": "autoresearch-rl@localhost",
    "GIT_COMMITTER_NAME": "autoresearch-rl",
    "GIT_COMMITTER_EMAIL": "autoresearch-rl@localhost",
}
_SAFE_CONFIG = ("-c", "core.hooksPath=/dev/null", "-c", "commit.gpgSign=false", "-c", "core.autocrlf=false")
_LOCK_AGE_WITHOUT_PROC_S = 600.0  # where /proc cannot tell us who holds a lock, trust only old ones to be stale


class HistoryError(RuntimeError):
    """A git command failed: a harness failure, not something the user caused."""


class CandidateHistory:
    """Git history of the campaign's train.py versions in `<run_dir>/history/`."""

    def __init__(self, run_dir: Path, file_name: str = FILE_NAME) -> None:
        self.root = Path(run_dir).absolute() / HISTORY_DIR  # absolute: git runs with cwd=root and GIT_DIR set
        self.file_name = file_name  # train.py; config.json for a simulated campaign
        git = shutil.which("git")
        if git is None:
            raise UserError(
                f"git is not installed (the candidate history in {self.root} needs it); install git, e.g. `apt-get install git`"
            )
        self._git_bin = git
        self._lock = threading.Lock()  # one controller may record candidates from several threads

    # ---- git plumbing ----------------------------------------------------------------------------

    def _git(self, *args: str, stdin: str | None = None, check: bool = True) -> tuple[int, str]:
        """Run git in the repository; returns (exit code, stdout). Bytes on the wire: no newline translation."""
        env = {
            **os.environ,
            **_IDENTITY,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,  # the user's aliases, hooks, signing or templates must not apply
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
            # explicit, never discovered: a run dir inside the user's own checkout must not touch that repository
            "GIT_DIR": str(self._git_dir),
            "GIT_WORK_TREE": str(self.root),
        }
        env.pop("GIT_INDEX_FILE", None)  # inherited when the controller itself runs from a git hook
        cmd = [self._git_bin, *_SAFE_CONFIG, *args]
        data = stdin.encode("utf-8", "surrogateescape") if stdin is not None else None
        cwd = self.root if self.root.is_dir() else None
        proc = subprocess.run(cmd, input=data, capture_output=True, env=env, cwd=cwd)
        if check and proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise HistoryError(f"`git {' '.join(args)}` in {self.root} failed: {err}")
        return proc.returncode, proc.stdout.decode("utf-8", "surrogateescape")

    @property
    def _git_dir(self) -> Path:
        return self.root / ".git"

    # ---- stale locks -----------------------------------------------------------------------------

    def _clear_stale_locks(self) -> None:
        """Remove lock files left by a killed controller; git refuses to work while they exist."""
        locks = [*self._git_dir.glob("*.lock"), *self._git_dir.glob("refs/**/*.lock")]
        if not locks or self._git_is_running():
            return
        for lock in locks:
            try:
                age = time.time() - lock.stat().st_mtime
            except FileNotFoundError:
                continue  # released meanwhile
            if not Path("/proc").is_dir() and age < _LOCK_AGE_WITHOUT_PROC_S:
                continue
            log.warning("removing stale git lock %s (left by a killed process, %.0f s old)", lock, age)
            lock.unlink(missing_ok=True)

    def _git_is_running(self) -> bool:
        """True when a git process works in this repository (Linux /proc; elsewhere unknown, so False)."""
        proc = Path("/proc")
        if not proc.is_dir():
            return False
        root = str(self.root.resolve())
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if not (entry / "comm").read_text().startswith("git"):
                    continue
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue  # gone, or not ours to inspect
            if cwd == root or cwd.startswith(root + os.sep):
                return True
        return False

    # ---- public API ------------------------------------------------------------------------------

    def ensure(self, initial_source: str | None = None) -> None:
        """Create the repository if missing; with `initial_source`, make it the first incumbent of an empty branch."""
        with self._lock:
            if not self._git_dir.is_dir():
                try:
                    self.root.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise UserError(f"cannot create {self.root} ({exc.strerror}); choose a writable --run-dir") from exc
                self._git("init", "--quiet")
                self._git("symbolic-ref", "HEAD", f"refs/heads/{BRANCH}")  # not `init -b`: works with git < 2.28
            self._clear_stale_locks()
        if initial_source is not None and self.incumbent() is None:
            self.keep(self._commit(initial_source, f"baseline {self.file_name}", None))

    def _commit(self, source: str, message: str, parent: str | None) -> str:
        blob = self._git("hash-object", "-w", "--no-filters", "--stdin", stdin=source)[1].strip()
        tree = self._git("mktree", stdin=f"100644 blob {blob}\t{self.file_name}\n")[1].strip()
        parents = ["-p", parent] if parent else []
        return self._git("commit-tree", tree, *parents, stdin=message.rstrip("\n") + "\n")[1].strip()

    def record(self, source: str, message: str, parent: str | None, exp_id: int) -> str:
        """Commit `source` on top of `parent` (its incumbent) and pin it as `refs/experiments/<exp_id>`; returns the sha."""
        # the trailer keeps commits of identical sources distinct, and names the ledger row from `git log`
        full = f"{message.rstrip()}\n\nExperiment: {exp_id}\n"
        with self._lock:
            self._clear_stale_locks()
            sha = self._commit(source, full, parent)
            self._git("update-ref", "-m", f"experiment {exp_id}", f"refs/experiments/{exp_id}", sha)
        return sha

    def keep(self, sha: str) -> None:
        """Make `sha` the incumbent: advance `research` to it and check its train.py out into the working tree."""
        with self._lock:
            self._clear_stale_locks()
            self._git("rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}")
            self._git("update-ref", "-m", "keep", f"refs/heads/{BRANCH}", sha)
            self._git("read-tree", "--reset", "-u", sha)

    def incumbent(self) -> str | None:
        """Sha of the `research` head, None before the first kept version."""
        return self._resolve(f"refs/heads/{BRANCH}")

    def experiment_commit(self, exp_id: int) -> str | None:
        """Sha pinned for an experiment, None when it was never recorded."""
        return self._resolve(f"refs/experiments/{exp_id}")

    def _resolve(self, ref: str) -> str | None:
        code, out = self._git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return out.strip() if code == 0 and out.strip() else None

    def source_at(self, sha: str) -> str:
        """The train.py of commit `sha`, byte for byte."""
        return self._git("cat-file", "blob", f"{sha}:{self.file_name}")[1]
