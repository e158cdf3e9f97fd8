"""The sandbox command lines, the fallback and its one warning, and (where bubblewrap works) real confinement."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from autoresearch_rl.env.data import dataset_dir
from autoresearch_rl.runner import sandbox as sb
from autoresearch_rl.runner.runner import PACKAGE_ROOT


@pytest.fixture
def fresh_probe():
    """Forget what was probed, before and after: tests fake the tools that exist."""
    sb.probe.cache_clear()
    sb.select.cache_clear()
    yield
    sb.probe.cache_clear()
    sb.select.cache_clear()


def _after(args: list[str], first: list[str], then: list[str]) -> bool:
    def at(seq: list[str]) -> int:
        return next(i for i in range(len(args)) if args[i:i + len(seq)] == seq)

    return at(first) < at(then)


def test_training_confinement_shows_only_the_training_files(tmp_path: Path, smoke_preset, smoke_cache) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    c = sb.training_confinement(ws, smoke_preset, smoke_cache, Path(PACKAGE_ROOT))
    args = sb.Sandbox("bwrap", (), userns=True).wrap([sys.executable, "train.py"], c)
    data = dataset_dir(smoke_preset, smoke_cache.resolve())
    assert ["--tmpfs", str(smoke_cache.resolve())] == args[args.index(str(smoke_cache.resolve())) - 1:][:2]
    for name in ("train.bin", "tokenizer.json", "token_bytes.safetensors", "meta.json"):
        assert _after(args, ["--tmpfs", str(smoke_cache.resolve())], ["--ro-bind", str(data / name)])
    assert not [a for a in args if a.endswith(("val.bin", "test.bin"))]
    assert _after(args, ["--ro-bind", "/", "/"], ["--bind", str(ws), str(ws)])  # the workspace: writable, last
    assert "--unshare-net" in args and "--unshare-user" in args and "--disable-userns" in args
    assert args[args.index("--") + 1:] == [sys.executable, "train.py"]
    assert sb.Sandbox("bwrap", ()).env(c) == {"TMPDIR": str(ws / ".tmp"), "HOME": str(ws / ".home")}


def test_a_hidden_directory_inside_a_readable_one_is_hidden_again(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"  # a readable source tree with the data cache inside it
    cache = checkout / "cache"
    c = sb.Confinement(workspace=tmp_path / "ws", hidden=(cache,), readable=(checkout, cache / "d" / "train.bin"))
    args = sb.Sandbox("bwrap", ()).wrap(["true"], c)
    rest = args[args.index(str(checkout)):]  # after the checkout is shown again ...
    assert rest[rest.index("--tmpfs") + 1] == str(cache)  # ... the cache inside it is hidden again ...
    assert str(cache / "d" / "train.bin") in rest[rest.index("--tmpfs"):]  # ... and its training file shown again


def test_lower_levels_wrap_less(tmp_path: Path) -> None:
    c = sb.Confinement(workspace=tmp_path)
    assert sb.Sandbox("none", sb.UNENFORCED["none"]).wrap(["x"], c) == ["x"]
    assert sb.Sandbox("unshare", sb.UNENFORCED["unshare"]).wrap(["x"], c)[:2] == ["unshare", "--net"]
    assert sb.Sandbox("none", ()).env(c) == {"TMPDIR": str(tmp_path / ".tmp")}


def test_without_bubblewrap_auto_falls_back_with_one_warning(fresh_probe, monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(sb.shutil, "which", lambda name: None)
    with caplog.at_level(logging.WARNING, logger=sb.__name__):
        first, second = sb.select("auto"), sb.select("auto")
    assert first.level == second.level == "none"
    assert first.unenforced == ("network", "filesystem", "val_data")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "NOT enforced: network, filesystem, val_data" in warnings[0] and "apt-get install bubblewrap" in warnings[0]
    with pytest.raises(sb.SandboxUnavailable, match="bubblewrap"):
        sb.select("bwrap")


def test_a_broken_bubblewrap_falls_back_too(fresh_probe, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    sandbox, why = sb.probe("bwrap")
    assert sandbox is None and "No permissions" in why
    assert sb.select("auto").level in ("unshare", "none")


def _confined(tmp_path: Path, smoke_preset, smoke_cache, script: str) -> subprocess.CompletedProcess:
    ws = tmp_path / "ws"
    ws.mkdir()
    sb.prepare_workspace(ws)
    c = sb.training_confinement(ws, smoke_preset, smoke_cache, Path(PACKAGE_ROOT))
    sandbox = sb.probe("bwrap")[0]
    assert sandbox is not None
    return subprocess.run(sandbox.wrap([sys.executable, "-c", script], c), cwd=ws, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", **sandbox.env(c)}, timeout=60)


def test_bubblewrap_confines_reads_writes_and_network(tmp_path: Path, smoke_preset, smoke_cache) -> None:
    if sb.probe("bwrap")[0] is None:
        pytest.skip(f"bubblewrap unavailable: {sb.probe('bwrap')[1]}")
    data = dataset_dir(smoke_preset, smoke_cache.resolve())
    script = f"""
import os, socket, tempfile
def check(label, action):
    try:
        action()
        print(label, "allowed")
    except OSError as exc:
        print(label, "denied", type(exc).__name__)
check("write-workspace", lambda: open("out.txt", "w").write("x"))
check("write-tmpdir", lambda: tempfile.NamedTemporaryFile(delete=False).write(b"x"))
check("write-shm", lambda: open("/dev/shm/x", "w").write("x"))
check("write-package", lambda: open({str(Path(PACKAGE_ROOT) / 'autoresearch_rl' / 'x.py')!r}, "w"))
check("write-etc", lambda: open("/etc/arl-test", "w"))
check("read-train", lambda: open({str(data / 'train.bin')!r}, "rb").read(16))
check("read-val", lambda: open({str(data / 'val.bin')!r}, "rb").read(16))
check("read-test", lambda: open({str(data / 'test.bin')!r}, "rb").read(16))
check("network", lambda: socket.create_connection(("1.1.1.1", 53), timeout=2))
print("uid", os.getuid())
"""
    out = _confined(tmp_path, smoke_preset, smoke_cache, script).stdout
    for allowed in ("write-workspace", "write-tmpdir", "write-shm", "read-train"):
        assert f"{allowed} allowed" in out, out
    for denied in ("write-package", "write-etc", "read-val", "read-test", "network"):
        assert f"{denied} denied" in out, out
    assert (tmp_path / "ws" / "out.txt").exists()
    assert list((tmp_path / "ws" / ".tmp").iterdir()) and (tmp_path / "ws" / ".shm" / "x").exists()
