"""Where experiments run: in the controller's process, on local device slots, or on a Ray cluster."""

from autoresearch_rl.backends.base import Backend, Executor, JobResult, JobSpec, Slot, execute_job

__all__ = ["Backend", "Executor", "JobResult", "JobSpec", "Slot", "execute_job"]


def make_backend(kind: str, executor: Executor, *, workers: int = 1, device: str = "auto",
                 ray_address: str | None = None, cpus_per_worker: float | None = None,
                 gpus_per_worker: float | None = None) -> Backend:
    """`inline` for one local worker, `local` slots for several, `ray` tasks on a Ray cluster."""
    from autoresearch_rl.backends.local import InlineBackend, LocalBackend, local_slots

    if kind == "local":
        if workers == 1:
            return InlineBackend(executor)  # the synchronous loop: nothing to pin, nothing shared
        return LocalBackend(executor, local_slots(workers, device))
    if kind == "ray":
        from autoresearch_rl.backends.ray_backend import RayBackend

        gpus = gpus_per_worker if gpus_per_worker is not None else (1.0 if device == "cuda" else 0.0)
        return RayBackend(executor, slots=workers, num_cpus=cpus_per_worker or 1.0, num_gpus=gpus, address=ray_address)
    from autoresearch_rl.errors import UserError

    raise UserError(f"unknown backend {kind!r}; choose local or ray")
