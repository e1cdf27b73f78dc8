"""The Ray Data engine of `sonic-ray motions import` (Ray shell; the work is `motion.shard_import`).

The file list becomes a Ray Dataset of {idx, path} rows; `map_batches` runs `ImportWorker` in an
actor pool of `workers` actors (one CPU each: robot data and FK built once per actor), each batch
read, validated and written as new shard files straight into the store folder (shared disk or
the one machine), and only a small JSON result per batch streams back to the driver, which
holds the store lock and commits the manifest. Ray is local (`address="local"`, a fresh
instance sized to the workers) unless RAY_ADDRESS names a cluster, or Ray is already initialised.
"""

from __future__ import annotations

import json
import os

from sonic_ray.motion.shard_import import ImportWorker


class RayImportWorker(ImportWorker):
    """`ImportWorker` in an actor that Ray gave one CPU: torch's and Arrow's thread pools are held to
    one thread, so an actor uses the one core it was given and two actors on two cores do not each
    start a pool per core."""

    def __init__(self, *args, **kwargs):
        import pyarrow as pa
        import torch

        torch.set_num_threads(1)
        pa.set_cpu_count(1)
        super().__init__(*args, **kwargs)


def _init_ray(workers: int) -> bool:
    """Start or join Ray; True when this call started it (and should shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS") or "local"
    kw = {} if address != "local" else {"num_cpus": max(workers, 1) + 1, "include_dashboard": False}
    if address == "local":  # Ray nices its workers (15); here they do all the work and the driver waits
        os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(address=address, logging_level="ERROR", log_to_driver=False, **kw)
    return True


def run_ray(files, worker_kwargs: dict, *, batch_files: int, on_result=None, workers: int = 2) -> list[dict]:
    """Ray Data engine with the signature `import_sharded` expects (bind `workers` with a lambda)."""
    import ray

    started = _init_ray(workers)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        rows = [{"idx": i, "path": p} for i, p in enumerate(files)]
        ds = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // batch_files)))
        out = ds.map_batches(
            RayImportWorker,
            fn_constructor_kwargs=worker_kwargs,
            batch_size=batch_files,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=max(1, workers)),
            num_cpus=1,
        )
        results = []
        for row in out.iter_rows():
            results.append(json.loads(row["result"]))
            if on_result is not None:
                on_result(results[-1])
        return results
    finally:
        if started:
            ray.shutdown()


def add_parser(subparsers) -> None:
    """`sonic-ray motions ...` with the Ray Data import engine bound (the core parser cannot import Ray)."""
    from sonic_ray.motion.cli import add_parser as add_motions_parser

    add_motions_parser(subparsers, ray_engine=run_ray)
