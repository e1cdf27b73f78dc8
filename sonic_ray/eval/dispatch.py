"""Where a planned evaluation runs: in this process for one chunk, as Ray tasks for several.

Above both `eval/pipeline` (Ray-free) and `eval/tasks` (Ray), so neither imports the other's caller.
"""

from __future__ import annotations

from pathlib import Path

from sonic_ray.cluster import init_ray
from sonic_ray.eval.pipeline import EvalPlan, evaluate_checkpoint_local


def evaluate_plan(plan: EvalPlan, out_dir: str | Path, *, render: int = 0, progress: bool = True) -> dict:
    """Evaluate and write out_dir: in this process for one chunk; as Ray tasks for several
    (joining RAY_ADDRESS / ray.address, or starting a local Ray, when Ray is not up yet)."""
    if plan.num_tasks == 1:
        return evaluate_checkpoint_local(plan, out_dir, render=render, progress=progress)
    # imports ray: only when a plan has several chunks, so a one-chunk evaluation never loads Ray
    from sonic_ray.eval.tasks import evaluate_checkpoint

    init_ray(plan.cfg)
    return evaluate_checkpoint(plan, out_dir, render=render, progress=progress)
