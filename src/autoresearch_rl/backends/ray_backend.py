"""Experiments as Ray tasks: one task per experiment, each with its resource request (GPUs, CPUs).

    arl run --backend ray                                  # a local Ray instance sized to this machine (or
                                                           # the one `ray start` started here, or $RAY_ADDRESS)
    arl run --backend ray --ray-address auto               # join the cluster this node belongs to (`ray start` ran here)
    arl run --backend ray --ray-address ray://HEAD:10001   # Ray Client, from a machine outside the cluster

Only experiments leave the driver. The controller, agent, ledger and git history stay in the process
that runs `arl`; a task receives a `JobSpec` (the candidate's source, its workspace, seed) and returns
the runner's ExperimentRecord and where it ran (`ray:<node id>:<pid>`, on `cuda:<id>` or `cpu (...)`).

The frozen environment reaches workers through the cache directory on shared storage, not through
Ray's object store. The cache is content-hashed and checked against the campaign's frozen manifest
before every run, and workers memory-map its token shards, so a node pages in only what it reads;
the object store would copy gigabytes of shards to every node and pin them in shared memory, and the
integrity check would then have to be re-done on the copies. The executor (a small dataclass naming
the preset, cache and manifest paths) is put in the object store once and shared by all tasks.

Running on a cluster:
  - mount the cache directory (--cache-dir) and the run directory (--run-dir) at the same path on
    every node (NFS, Lustre...): workers write the experiment workspaces (train.py, train.log,
    checkpoint, eval.json) into the run directory, and the driver reads them;
  - install this package in the same Python environment on every node
    (`pip install 'autoresearch-rl[ray]'`, which pins Ray); Ray does not ship it;
  - `ray start --head` on one node, `ray start --address=HEAD:6379` on the others, then
    `arl run --backend ray --ray-address auto` on the head node. Ray 2.60 turns on token
    authentication for the clusters it starts: a driver on another machine needs the head's
    ~/.ray/auth_token.

A task is never retried by Ray (max_retries=0): re-running is the controller's decision and is a new
row in the ledger. A dead worker or node, an out-of-memory kill or a cancellation comes back as a
`JobResult` without a record and with the reason in `lost`; the controller marks the experiment
INTERRUPTED and runs it again, and the campaign goes on.

A killed worker (SIGKILL, the OOM killer, `shutdown(cancel=True)`) runs no Python cleanup, yet
its candidate does not outlive it: the runner starts every candidate with PR_SET_PDEATHSIG=SIGKILL
(and bubblewrap's --die-with-parent), so the kernel kills it when the worker dies, before a re-run
could find its GPU taken. A task that ends any other way kills its candidates itself.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

from autoresearch_rl.backends.base import Executor, JobResult, JobSpec, execute_job
from autoresearch_rl.errors import UserError
from autoresearch_rl.experiment import ExperimentRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _TaskResult:
    """What a task returns to the driver: the record (or why there is none) and where it ran."""

    record: ExperimentRecord | None
    lost: str
    worker: str
    device: str
    started_at: float
    finished_at: float


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("--backend ray needs Ray: pip install 'autoresearch-rl[ray]'") from None
    return ray


class RayBackend:
    """Up to `slots` experiments at once, each a Ray task asking for `num_cpus` CPUs and `num_gpus` GPUs."""

    name = "ray"

    def __init__(self, executor: Executor, *, slots: int, num_cpus: float = 1, num_gpus: float = 0,
                 address: str | None = None, init_kwargs: Mapping[str, Any] | None = None) -> None:
        if slots < 1:
            raise UserError(f"--workers must be at least 1, not {slots}")
        ray = import_ray()
        self._ray = ray
        self.slots = slots
        self.num_cpus, self.num_gpus = num_cpus, num_gpus
        self._owns_ray = not ray.is_initialized()  # only shut down what this backend started or connected
        if self._owns_ray:
            started = time.perf_counter()
            # ray.init replaces the SIGTERM handler with sys.exit; keep ours (the CLI stops cleanly on SIGTERM)
            main = threading.current_thread() is threading.main_thread()
            sigterm = signal.getsignal(signal.SIGTERM) if main else None
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                         ignore_reinit_error=True, **dict(init_kwargs or {}))
            except ConnectionError as exc:
                raise UserError(f"cannot reach a Ray cluster at {address or 'this machine'!r} ({exc}); "
                                "check --ray-address, or start one with `ray start --head`") from None
            finally:
                if sigterm is not None:
                    signal.signal(signal.SIGTERM, sigterm)
            log.info("ray ready in %.1f s: %s", time.perf_counter() - started, ray.cluster_resources())
        try:
            self._check_resources(local=address is None)
        except UserError:
            if self._owns_ray:
                ray.shutdown()
            raise
        self._executor = ray.put(executor)  # once, not pickled again with every task
        # Threads for a CPU task: the cores it reserved (Ray reserves them but does not pin them).
        self._env = {} if num_gpus else {"ARL_THREADS": str(max(1, int(num_cpus)))}
        self._task = ray.remote(_run_task).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0,
                                                   retry_exceptions=False, name="arl-experiment")
        self._running: dict[Any, tuple[JobSpec, float]] = {}  # ObjectRef -> (spec, submitted at)

    def _check_resources(self, local: bool) -> None:
        """Refuse a request no node can meet (the task would wait forever); on a cluster only warn (it may scale up)."""
        nodes = [n["Resources"] for n in self._ray.nodes() if n.get("Alive")]
        fits = any(r.get("CPU", 0) >= self.num_cpus and r.get("GPU", 0) >= self.num_gpus for r in nodes)
        if fits:
            return
        have = ", ".join(f"{r.get('CPU', 0):g} CPUs + {r.get('GPU', 0):g} GPUs" for r in nodes) or "no nodes"
        message = f"no Ray node has {self.num_cpus:g} CPUs and {self.num_gpus:g} GPUs for one experiment (nodes: {have})"
        if local:
            raise UserError(message + "; ask for less, or run on a cluster with --ray-address")
        log.warning("%s; experiments wait until the cluster has such a node", message)

    def free_slots(self) -> int:
        return self.slots - len(self._running)

    def submit(self, spec: JobSpec) -> None:
        if not self.free_slots():
            raise IndexError("no free slot: wait for a result before submitting")
        ref = self._task.remote(self._executor, spec, self._env)
        self._running[ref] = (spec, time.time())

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        if not self._running:
            return []
        ready, _ = self._ray.wait(list(self._running), num_returns=1, timeout=timeout)
        if not ready:
            return []
        ready, _ = self._ray.wait(list(self._running), num_returns=len(self._running), timeout=0)
        return [self._collect(ref) for ref in ready]

    def _collect(self, ref: Any) -> JobResult:
        spec, submitted = self._running.pop(ref)
        try:
            out: _TaskResult = self._ray.get(ref)
        except self._ray.exceptions.RayError as exc:
            return JobResult(spec, None, worker="ray", device="", started_at=submitted, finished_at=time.time(),
                             lost=lost_reason(exc, self._ray))
        return JobResult(spec, out.record, worker=out.worker, device=out.device, started_at=out.started_at,
                         finished_at=out.finished_at, lost=out.lost)

    def in_flight(self) -> list[int]:
        return sorted(spec.exp_id for spec, _ in self._running.values())

    def shutdown(self, cancel: bool = False) -> None:
        refs = list(self._running)
        if cancel:
            for ref in refs:
                self._ray.cancel(ref, force=True)  # kills the worker, and the kernel its candidate (PDEATHSIG)
        if refs:  # like the local backend: return once no job runs any more (their results are dropped)
            self._ray.wait(refs, num_returns=len(refs), timeout=None)
        self._running.clear()
        if self._owns_ray:
            self._ray.shutdown()


def lost_reason(exc: BaseException, ray: Any) -> str:
    """One line saying why a task brought back no record."""
    if isinstance(exc, ray.exceptions.RayTaskError) and exc.cause is not None:
        exc = exc.cause  # our code raised in the worker: name its exception, not Ray's wrapper
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


# ---- worker side ---------------------------------------------------------------------------------


def _run_task(executor: Executor, spec: JobSpec, env: Mapping[str, str]) -> _TaskResult:
    """The Ray task: run one job in this worker and say where it ran."""
    import ray

    from autoresearch_rl.runner.process import kill_running

    started = time.time()
    context = ray.get_runtime_context()
    gpus = [str(g) for g in context.get_accelerator_ids().get("GPU", [])]
    env = dict(env)
    if gpus:  # Ray has set CUDA_VISIBLE_DEVICES in this worker already; say it again for the candidate
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        device = "cuda:" + ",".join(gpus)
    else:
        cores = os.cpu_count() or 1
        threads = int(env.get("ARL_THREADS", cores))
        device = f"cpu ({threads} of {cores} cores)" + (" [shared]" if threads < cores else "")
    worker = f"ray:{context.get_node_id()[:8]}:{os.getpid()}"
    try:
        record, lost = execute_job(executor, spec, env=env), ""
    except Exception as exc:  # noqa: BLE001 - a harness failure in the worker: the job comes back lost and is re-run
        record, lost = None, f"{type(exc).__name__}: {exc}"
    finally:
        kill_running()  # e.g. a cancel raised KeyboardInterrupt here: stop the candidate with the task
    return _TaskResult(record, lost, worker, device, started, time.time())
