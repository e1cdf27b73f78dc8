"""Evaluation as Ray tasks: one task per chunk (a shard of the motion store) of a checkpoint.

`evaluate_checkpoint` fans the chunks out, shows progress as they finish, renders the worst clips
on the caller and writes the output directory. `BackgroundEvaluation` is the training driver's
non-blocking form: it submits an evaluation, and `poll()` (ray.wait with timeout 0) hands back
finished ones, rendering their worst clips in a second task when asked to; a failed evaluation
comes back as an error message, never as an exception in the training loop.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import ray

from sonic_ray.eval.pipeline import (
    EvalPlan,
    finish,
    merge_outputs,
    progress_bar,
    render_worst,
    run_chunk,
    write_plan_outputs,
)
from sonic_ray.eval.report import VIDEOS_DIR
from sonic_ray.eval.runner import ClipTrajectory, EvalOutput
from sonic_ray.utils.io import atomic_write


@ray.remote(num_cpus=1)
def _chunk_task(plan: EvalPlan, k: int, keep_worst: int) -> EvalOutput:
    import torch

    torch.set_num_threads(1)  # the task's CPU steps MuJoCo; a torch pool would fight it
    return run_chunk(plan, k, keep_worst=keep_worst)


@ray.remote(num_cpus=1)
def _render_task(plan: EvalPlan, worst: list[ClipTrajectory]) -> dict[str, tuple[str, bytes]]:
    """{file name: (caption, MP4 bytes)}: rendered where the task runs, shipped to the driver."""
    with tempfile.TemporaryDirectory() as tmp:
        captions = render_worst(plan.cfg, worst, Path(tmp), several_encoders=len(plan.encoders) > 1)
        return {name: (cap, (Path(tmp) / name).read_bytes()) for name, cap in captions.items()}


def submit_chunks(plan: EvalPlan, *, keep_worst: int = 0) -> list[ray.ObjectRef]:
    cpus = float(plan.cfg.callbacks.eval_cpus_per_task)
    return [
        _chunk_task.options(num_cpus=cpus, name=f"sonic_eval_{plan.checkpoint.name}_{k}").remote(
            plan, k, keep_worst
        )
        for k in range(plan.num_tasks)
    ]


def evaluate_checkpoint(
    plan: EvalPlan, out_dir: str | Path, *, render: int = 0, progress: bool = True
) -> dict:
    """Evaluate the plan's chunks as Ray tasks (Ray must be initialised), render the `render`
    worst clips here, write out_dir. Returns the metrics (metrics.json content)."""
    refs = submit_chunks(plan, keep_worst=render)
    outs: list[EvalOutput] = []
    with progress_bar(progress, plan.num_clips * (len(plan.encoders) + plan.blind)) as advance:
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            out = ray.get(ready[0])
            outs.append(out)
            advance(len(out.rows))
    return finish(plan, merge_outputs(outs, render), out_dir, render=render, progress=progress)


@dataclass
class _Pending:
    plan: EvalPlan
    out_dir: Path
    render: int
    refs: list
    submitted: float = field(default_factory=time.time)
    merged: EvalOutput | None = None
    render_ref: ray.ObjectRef | None = None


@dataclass
class EvalResult:
    iteration: int
    metrics: dict | None  # metrics.json content; None when the evaluation failed
    error: str | None = None


class BackgroundEvaluation:
    """Evaluations running beside training. submit() returns at once; poll() never blocks."""

    def __init__(self):
        self._pending: list[_Pending] = []

    def __len__(self) -> int:
        return len(self._pending)

    def submit(self, plan: EvalPlan, out_dir: str | Path, *, render: int = 0) -> None:
        self._pending.append(_Pending(plan, Path(out_dir), render, submit_chunks(plan, keep_worst=render)))

    def poll(self, timeout: float = 0.0) -> list[EvalResult]:
        done = []
        for p in list(self._pending):
            try:
                result = self._advance(p, timeout)
            except Exception as e:  # a failed evaluation is reported, training goes on
                result = EvalResult(p.plan.iteration, None, _first_line(e))
            if result is not None:
                self._pending.remove(p)
                done.append(result)
        return done

    def wait(self, timeout_s: float) -> list[EvalResult]:
        """Poll until nothing is pending or timeout_s passed (end of training)."""
        deadline = time.time() + timeout_s
        results = []
        while self._pending and time.time() < deadline:
            results += self.poll(timeout=min(1.0, max(deadline - time.time(), 0.0)))
        return results

    def _advance(self, p: _Pending, timeout: float) -> EvalResult | None:
        if p.merged is None:
            ready, _ = ray.wait(p.refs, num_returns=len(p.refs), timeout=timeout)
            if len(ready) < len(p.refs):
                return None
            p.merged = merge_outputs(ray.get(p.refs), p.render)
            if p.render and p.merged.worst:
                p.render_ref = _render_task.options(
                    num_cpus=float(p.plan.cfg.callbacks.eval_cpus_per_task)
                ).remote(p.plan, p.merged.worst)
        videos = {}
        if p.render_ref is not None:
            ready, _ = ray.wait([p.render_ref], timeout=timeout)
            if not ready:
                return None
            (p.out_dir / VIDEOS_DIR).mkdir(parents=True, exist_ok=True)
            for name, (caption, data) in ray.get(p.render_ref).items():
                atomic_write(p.out_dir / VIDEOS_DIR / name, data)
                videos[name] = caption
        metrics = write_plan_outputs(
            p.plan, p.merged, p.out_dir, videos=videos, wall_seconds=round(time.time() - p.submitted, 3)
        )
        return EvalResult(p.plan.iteration, metrics)


def _first_line(e: BaseException) -> str:
    """The message of the error (of its cause, for an error raised inside a Ray task)."""
    e = getattr(e, "cause", None) or e
    text = f"{type(e).__name__}: {e}".strip()
    return text.splitlines()[0] if text else ""
