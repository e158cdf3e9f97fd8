"""A Ray backend that starts Ray itself: it leaves the controller's SIGTERM handler alone and stops Ray when done.

Apart from test_ray_backend.py, whose tests share one Ray instance the backends find already running.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from autoresearch_rl.backends import JobSpec  # noqa: E402
from autoresearch_rl.backends.ray_backend import RayBackend  # noqa: E402
from autoresearch_rl.synthetic import SyntheticLandscape  # noqa: E402
from autoresearch_rl.target import template_source  # noqa: E402


def _stop_cleanly(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def test_a_backend_that_started_ray_keeps_the_sigterm_handler_and_stops_ray(tmp_path: Path) -> None:
    assert not ray.is_initialized()
    previous = signal.signal(signal.SIGTERM, _stop_cleanly)
    try:
        backend = RayBackend(SyntheticLandscape(template_source()), slots=1, init_kwargs={"num_cpus": 1})
        try:
            assert signal.getsignal(signal.SIGTERM) is _stop_cleanly
            backend.submit(JobSpec(exp_id=1, source=template_source(), workspace=str(tmp_path / "00001"), seed=1))
            [result] = backend.wait(timeout=60)
            assert result.record is not None and result.worker.startswith("ray:")
        finally:
            backend.shutdown()
        assert not ray.is_initialized()
    finally:
        signal.signal(signal.SIGTERM, previous)
        if ray.is_initialized():
            ray.shutdown()
