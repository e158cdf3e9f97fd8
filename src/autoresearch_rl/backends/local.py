"""Backends on this machine: inline (one job at a time in the controller's thread) and N local slots.

Local slots are threads that each wait on their own candidate subprocess (the runner does the
work in child processes, so threads cost nothing here). A slot pins its job to one device through
the environment: one GPU per slot (CUDA_VISIBLE_DEVICES), or a share of the CPU cores (ARL_THREADS).
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from autoresearch_rl.backends.base import Executor, JobResult, JobSpec, Slot, execute_job
from autoresearch_rl.errors import UserError
from autoresearch_rl.runner.process import kill_running


def cuda_device_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:  # noqa: BLE001 - a broken CUDA install means: no GPUs to hand out
        return 0


def local_slots(workers: int, device: str = "auto", cpu_count: int | None = None,
                gpu_count: int | None = None) -> list[Slot]:
    """`workers` slots: one GPU each when the preset trains on CUDA, else an equal share of the CPU cores.

    Two slots never share a GPU (their budgets would not be comparable); on CPU the slots do share
    the machine, and say so in every record they produce.
    """
    if workers < 1:
        raise UserError(f"--workers must be at least 1, not {workers}")
    gpus = cuda_device_count() if gpu_count is None else gpu_count
    if device == "cuda" or (device == "auto" and gpus > 0):
        if workers > gpus:
            raise UserError(f"--workers {workers} needs {workers} GPUs, this machine has {gpus}; "
                            "use fewer workers, or --backend ray on a cluster")
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = [d.strip() for d in visible.split(",")] if visible else [str(i) for i in range(gpus)]
        return [Slot(name=f"local:{i}", device=f"cuda:{ids[i]}", env={"CUDA_VISIBLE_DEVICES": ids[i]})
                for i in range(workers)]
    cores = cpu_count or os.cpu_count() or 1
    threads = max(1, cores // workers)
    shared = workers > 1
    label = f"cpu ({threads} of {cores} cores" + (f", shared by {workers} slots)" if shared else ")")
    env = {"ARL_THREADS": str(threads)} if shared or "ARL_THREADS" not in os.environ else {}
    return [Slot(name=f"local:{i}", device=label, env=env, shared=shared) for i in range(workers)]


class InlineBackend:
    """One job at a time, run inside `wait` in the caller's thread: the classic synchronous loop."""

    name = "inline"
    slots = 1

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._queue: deque[JobSpec] = deque()

    def free_slots(self) -> int:
        return 0 if self._queue else 1

    def submit(self, spec: JobSpec) -> None:
        self._queue.append(spec)

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        if not self._queue:
            return []
        spec = self._queue[0]
        started = time.time()
        record = execute_job(self.executor, spec)  # a KeyboardInterrupt propagates: the loop marks it INTERRUPTED
        self._queue.popleft()
        return [JobResult(spec, record, worker="inline", device="", started_at=started, finished_at=time.time())]

    def in_flight(self) -> list[int]:
        return [s.exp_id for s in self._queue]

    def shutdown(self, cancel: bool = False) -> None:
        self._queue.clear()


class LocalBackend:
    """`len(slots)` jobs at once on this machine, one thread per slot."""

    name = "local"

    def __init__(self, executor: Executor, slots: list[Slot]) -> None:
        self.executor = executor
        self._slots = list(slots)
        self._free: deque[Slot] = deque(slots)
        self._pool = ThreadPoolExecutor(max_workers=len(slots), thread_name_prefix="arl-slot")
        self._done: queue.Queue[tuple[Slot, JobResult]] = queue.Queue()
        self._running: dict[int, Slot] = {}
        self._lock = threading.Lock()
        self._futures: list[Future[None]] = []

    @property
    def slots(self) -> int:
        return len(self._slots)

    def free_slots(self) -> int:
        return len(self._free)

    def submit(self, spec: JobSpec) -> None:
        slot = self._free.popleft()  # IndexError: the caller submitted without a free slot
        with self._lock:
            self._running[spec.exp_id] = slot
        self._futures.append(self._pool.submit(self._work, slot, spec))

    def _work(self, slot: Slot, spec: JobSpec) -> None:
        started = time.time()
        try:
            record, lost = execute_job(self.executor, spec, env=slot.env), ""
        except BaseException as exc:  # noqa: BLE001 - a harness failure in a worker: the job is re-run, not lost
            record, lost = None, f"{type(exc).__name__}: {exc}"
        device = slot.device + (" [shared]" if slot.shared else "")
        self._done.put((slot, JobResult(spec, record, worker=slot.name, device=device, started_at=started,
                                        finished_at=time.time(), lost=lost)))

    def wait(self, timeout: float | None = None) -> list[JobResult]:
        out: list[JobResult] = []
        try:
            item = self._done.get(timeout=timeout)
        except queue.Empty:
            return out
        while True:
            slot, result = item
            with self._lock:
                self._running.pop(result.spec.exp_id, None)
            self._free.append(slot)
            out.append(result)
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                return out

    def in_flight(self) -> list[int]:
        with self._lock:
            return sorted(self._running)

    def shutdown(self, cancel: bool = False) -> None:
        if cancel:
            while not all(f.done() for f in self._futures):
                kill_running()  # again and again: a worker may be between training and evaluation
                time.sleep(0.05)
        self._pool.shutdown(wait=True, cancel_futures=True)
