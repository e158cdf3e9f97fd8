"""Confines a candidate's process with an established tool, and says exactly what it could not confine.

Levels, best first (`RunnerConfig.sandbox="auto"` takes the best one that works on this machine):

- `bwrap` (bubblewrap): the root file system read-only, the workspace the only writable place
  (TMPDIR and /dev/shm point into it, so temporary files count against its disk limit), a private
  network namespace with nothing but loopback, the prepared data reduced to what training needs
  (tokenizer, token bytes, train split, meta; no val/test split, no raw corpus), the controller's
  home directory hidden (credentials) except the Python installation, and a user namespace so the
  candidate holds no capabilities on the host.
- `unshare` (util-linux): a private network namespace only.
- `none`: no confinement; the resource limits and the evaluator's checks still apply.

A level below `bwrap` logs one warning per controller naming what is not enforced. Every record
carries its level and the list of protections that were missing (`summary["sandbox"]`,
`summary["unenforced"]`), so a campaign's audit trail says what each candidate could have done.
"""

from __future__ import annotations

import functools
import glob
import logging
import os
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from autoresearch_rl.env import corpus
from autoresearch_rl.env import data as env_data
from autoresearch_rl.env.presets import Preset

log = logging.getLogger(__name__)

LEVELS = ("bwrap", "unshare", "none")
HIDDEN_SPLITS = ("val.bin", "test.bin")  # scoring data: the evaluator's, never the candidate's
TRAINING_FILES = tuple(name for name in env_data.DATA_FILES if name not in HIDDEN_SPLITS)
_USERNS_ARGS = ("--unshare-user", "--uid", "65534", "--gid", "65534")  # "nobody" inside the user namespace
_PROBE_TIMEOUT_S = 20.0

UNENFORCED = {
    "bwrap": (),
    "unshare": ("filesystem", "val_data"),
    "none": ("network", "filesystem", "val_data"),
}
_INSTALL_HINT = "install bubblewrap (e.g. `apt-get install bubblewrap`) to enforce them"


class SandboxUnavailable(RuntimeError):
    """A sandbox level was asked for explicitly and does not work on this machine."""


@dataclass(frozen=True)
class Confinement:
    """What one sandboxed command may touch."""

    workspace: Path  # the only writable directory; TMPDIR and /dev/shm are inside it (.tmp, .shm)
    hidden: tuple[Path, ...] = ()  # directories replaced by an empty tmpfs
    readable: tuple[Path, ...] = ()  # files or directories shown again, read-only, inside hidden ones
    network: bool = False  # keep the host's network


@dataclass(frozen=True)
class Sandbox:
    """A working sandbox level and the protections it lacks."""

    level: str
    unenforced: tuple[str, ...]
    userns: bool = False  # bwrap could create a user namespace (no host capabilities inside)

    def wrap(self, argv: list[str], confinement: Confinement) -> list[str]:
        """`argv` prefixed with the sandbox command (unchanged for level `none`)."""
        if self.level == "bwrap":
            return [*_bwrap_args(confinement, userns=self.userns), "--", *argv]
        if self.level == "unshare" and not confinement.network:
            return _unshare_prefix() + argv
        return list(argv)

    def env(self, confinement: Confinement) -> dict[str, str]:
        """Variables the command needs inside: temp files go to the workspace, where disk use is counted."""
        env = {"TMPDIR": str(confinement.workspace / ".tmp")}
        if self.level == "bwrap":
            env["HOME"] = str(confinement.workspace / ".home")  # the real one is hidden (and read-only)
        return env


def prepare_workspace(workspace: Path) -> None:
    """The directories a sandboxed command writes its temporary files to."""
    for name in (".tmp", ".shm", ".home"):
        (workspace / name).mkdir(exist_ok=True)


def training_confinement(workspace: Path, preset: Preset, cache_dir: Path, package_root: Path) -> Confinement:
    """Training: the workspace writable; of the cache only the training files; the raw corpus hidden."""
    cache_dir = Path(cache_dir).resolve()
    dataset = env_data.dataset_dir(preset, cache_dir)
    readable = [dataset / name for name in TRAINING_FILES if (dataset / name).exists()]
    hidden = [cache_dir]
    if preset.corpus == "kjv":
        try:
            hidden.append(corpus.kjv_path().parent)  # the text the val/test chapters come from
        except Exception:  # noqa: BLE001 - no corpus installed: nothing to hide
            pass
    home = _home()
    if home is not None:
        hidden.append(home)
    for path in (Path(package_root).resolve(), *_python_paths()):
        inside = [h for h in hidden if path.is_relative_to(h)]
        # a package or interpreter in a hidden directory must stay importable, but never un-hide the data
        if path.exists() and inside and path not in hidden and not path.is_relative_to(cache_dir):
            readable.append(path)
    return Confinement(workspace=Path(workspace).resolve(), hidden=tuple(hidden), readable=tuple(readable))


def smoke_confinement(workspace: Path, package_root: Path) -> Confinement:
    """The smoke check (random tokens, one step): no data needed, so the home directory is hidden as in training."""
    home = _home()
    if home is None:
        return Confinement(workspace=Path(workspace).resolve())
    readable = [p for p in (Path(package_root).resolve(), *_python_paths()) if p.exists() and p.is_relative_to(home)]
    return Confinement(workspace=Path(workspace).resolve(), hidden=(home,), readable=tuple(readable))


def evaluation_confinement(workspace: Path) -> Confinement:
    """The evaluator sees everything read-only (it needs val/test) and writes only its result into the workspace."""
    return Confinement(workspace=Path(workspace).resolve())


def _home() -> Path | None:
    """The controller's home (ssh keys, tokens), unless it is the root of everything that matters."""
    home = Path(os.path.expanduser("~")).resolve()
    return home if len(home.parts) > 1 and home.is_dir() else None


def _python_paths() -> list[Path]:
    """The interpreter, its standard library and every import path: what a candidate needs to start."""
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).parent}
    paths.update(Path(p) for p in sys.path if p and os.path.isabs(p))
    try:
        paths.add(Path(site.getusersitepackages()))
    except AttributeError:
        pass
    return sorted({p.resolve() for p in paths})


def _bwrap_args(c: Confinement, *, userns: bool) -> list[str]:
    ws = str(c.workspace)
    # a private /proc (bwrap keeps /proc/sys read-only): CUDA fails to initialise on a read-only /proc
    args = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    args += [a for dev in sorted(glob.glob("/dev/nvidia*")) + sorted(glob.glob("/dev/dri")) for a in ("--dev-bind", dev, dev)]
    args += ["--bind", f"{ws}/.shm", "/dev/shm"]
    by_depth = lambda paths: sorted(paths, key=lambda p: len(p.parts))  # noqa: E731 - parents mount first
    for path in by_depth(c.hidden):
        args += ["--tmpfs", str(path)]
    for path in by_depth(c.readable):
        args += ["--ro-bind", str(path), str(path)]
    # a readable directory (say, a checkout on sys.path) may contain a hidden one (a cache inside it): hide it again
    rehidden = [h for h in by_depth(c.hidden) if any(h != r and h.is_relative_to(r) for r in c.readable)]
    for path in rehidden:
        args += ["--tmpfs", str(path)]
    for path in by_depth(r for r in c.readable if any(r.is_relative_to(h) for h in rehidden)):
        args += ["--ro-bind", str(path), str(path)]
    args += ["--bind", ws, ws, "--chdir", ws, "--die-with-parent", "--unshare-ipc", "--unshare-uts"]
    if not c.network:
        args.append("--unshare-net")
    if userns:
        # no capabilities on the host, and no nested namespaces to hide a process from the watchdog in
        args += [*_USERNS_ARGS, "--disable-userns"]
    return args


def _unshare_prefix() -> list[str]:
    return ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--net", "--map-root-user"]


def _works(argv: list[str]) -> tuple[bool, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    return proc.returncode == 0, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"


@functools.lru_cache(maxsize=None)
def probe(level: str) -> tuple[Sandbox | None, str]:
    """Whether `level` works here (run once per controller): the Sandbox, or None and why not."""
    if level == "none":
        return Sandbox("none", UNENFORCED["none"]), ""
    if level == "unshare":
        if shutil.which("unshare") is None:
            return None, "unshare is not installed"
        ok, why = _works([*_unshare_prefix(), "true"])
        return (Sandbox("unshare", UNENFORCED["unshare"]), "") if ok else (None, f"unshare --net failed: {why}")
    if level == "bwrap":
        if shutil.which("bwrap") is None:
            return None, "bubblewrap (bwrap) is not installed"
        base = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-net", "--die-with-parent"]
        ok, why = _works([*base, *_USERNS_ARGS, "--disable-userns", "true"])  # bubblewrap >= 0.8
        if ok:
            return Sandbox("bwrap", (), userns=True), ""
        ok, why_root = _works([*base, "true"])  # root without user namespaces: mounts still work
        if ok:
            return Sandbox("bwrap", ()), ""
        return None, f"bwrap does not run here: {why or why_root}"
    raise ValueError(f"unknown sandbox level {level!r}; choose one of {', '.join(('auto', *LEVELS))}")


@functools.lru_cache(maxsize=None)
def select(requested: str = "auto") -> Sandbox:
    """The sandbox for `requested` ('auto' = the best that works); warns once when it lacks protections."""
    if requested != "auto":
        sandbox, why = probe(requested)
        if sandbox is None:
            raise SandboxUnavailable(f"sandbox {requested!r} is not available: {why}")
        return sandbox
    reasons = []
    for level in LEVELS:
        sandbox, why = probe(level)
        if sandbox is not None:
            if sandbox.unenforced:
                log.warning("candidates run without a full sandbox (%s); NOT enforced: %s; limits on memory, processes, "
                            "disk and time still apply; %s", "; ".join(reasons), ", ".join(sandbox.unenforced), _INSTALL_HINT)
            return sandbox
        reasons.append(why)
    raise AssertionError("level 'none' always works")
