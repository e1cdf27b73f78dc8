"""Evaluating a checkpoint end to end, Ray-free: plan the chunks, evaluate a chunk, merge chunks,
render the worst clips, write the output directory. `sonic_ray.eval.tasks` runs the same chunks
as Ray tasks; `evaluate_checkpoint_local` runs them in this process; `sonic_ray.eval.dispatch`
chooses between the two.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from sonic_ray.config.schema import SonicConfig
from sonic_ray.envs.factory import motion_store_path
from sonic_ray.eval import video
from sonic_ray.eval.metrics import SUMMARY_KEYS
from sonic_ray.eval.policy import read_checkpoint
from sonic_ray.eval.report import VIDEOS_DIR, write_outputs
from sonic_ray.eval.runner import (
    ClipTrajectory,
    EvalOutput,
    evaluate_policy,
    store_clip_names,
    worst_first_key,
)
from sonic_ray.motion.store import store_size
from sonic_ray.robots import load_model
from sonic_ray.train.checkpoint import checkpoint_iteration, resolve_checkpoint

if TYPE_CHECKING:
    from sonic_ray.eval.policy import PolicyCheckpoint

EVAL_DIR = "eval"
LOGGED_KEYS = SUMMARY_KEYS


@dataclass
class EvalPlan:
    """What to evaluate: a resolved checkpoint, its config (with overrides), and the chunking."""

    checkpoint: Path
    iteration: int
    cfg: SonicConfig
    overrides: list[str]
    encoders: list[str]
    num_envs: int
    num_clips: int  # clips to evaluate (per encoder)
    max_clips: int  # evaluate store clips with index < max_clips (0: all)
    num_tasks: int  # chunk k of num_tasks evaluates shard (k, num_tasks) of the store
    blind: bool = False  # also the blind control (eval.runner.BlindPolicy: the token zeroed)
    # The checkpoint as planning read it, so a chunk run in this process builds its policy from it
    # instead of reading the checkpoint again; None when planning was given the config. Never
    # pickled: a Ray task (perhaps on another node) reads and verifies the checkpoint itself.
    loaded: PolicyCheckpoint | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "loaded": None}

    @property
    def run_dir(self) -> Path:
        return run_dir_of(self.checkpoint)

    def default_out_dir(self) -> Path:
        return self.run_dir / EVAL_DIR / self.checkpoint.name

    def shard(self, k: int) -> tuple[int, int] | None:
        return None if self.num_tasks == 1 else (k, self.num_tasks)


def run_dir_of(checkpoint: Path) -> Path:
    """<run>/checkpoints/iter_N -> <run> (a checkpoint elsewhere: its parent)."""
    checkpoint = Path(checkpoint)
    return checkpoint.parents[1] if checkpoint.parent.name == "checkpoints" else checkpoint.parent


def plan_evaluation(
    checkpoint: str | Path,
    overrides: Sequence[str] = (),
    *,
    encoders: Sequence[str] | None = None,
    num_envs: int | None = None,
    max_tasks: int | None = None,
    clips_per_task: int | None = None,
    max_clips: int | None = None,
    cfg: SonicConfig | None = None,
    blind: bool | None = None,
) -> EvalPlan:
    """Resolve and verify the checkpoint (CheckpointError if it is missing or corrupt), read its
    config and size the evaluation; unset arguments default to the config's callbacks.eval_*.
    With `cfg` (the training driver: it is the checkpoint's config) nothing is loaded here, so
    planning costs the store's footer only; the tasks verify the checkpoint when they load it.
    Otherwise the loaded checkpoint stays with the plan (`loaded`) for the chunks run in this process."""
    loaded = None
    if cfg is None:
        loaded = read_checkpoint(checkpoint)
        path, cfg, iteration = loaded.path, loaded.config(overrides), loaded.iteration
    else:
        path = resolve_checkpoint(checkpoint)
        iteration = checkpoint_iteration(path) or 0
    cb = cfg.callbacks
    encs = list(encoders or cb.eval_encoders)
    bad = [e for e in encs if e not in cfg.actor_critic.encoders]
    if bad:
        raise ValueError(f"encoders {bad}: the policy has encoders {sorted(cfg.actor_critic.encoders)}")
    store = motion_store_path(cfg)
    total = store_size(store)[1]
    limit = int(cb.eval_max_clips if max_clips is None else max_clips)
    n = min(total, limit) if limit > 0 else total
    per_task = int(clips_per_task or cb.eval_clips_per_task)
    tasks = max(1, min(int(max_tasks or cb.eval_max_tasks), math.ceil(n / max(per_task, 1))))
    return EvalPlan(
        checkpoint=path,
        iteration=iteration,
        cfg=cfg,
        overrides=list(overrides),
        encoders=encs,
        num_envs=int(num_envs or cb.eval_num_envs),
        num_clips=n,
        max_clips=limit if limit > 0 else 0,
        num_tasks=tasks,
        blind=bool(cb.eval_blind if blind is None else blind),
        loaded=loaded,
    )


def plan_device(plan: EvalPlan) -> str:
    return "cuda" if plan.cfg.device.startswith("cuda") and torch.cuda.is_available() else "cpu"


def plan_policy(plan: EvalPlan, device: str):
    """(cfg, policy) of the plan's checkpoint: from the state planning loaded, else read here."""
    loaded = plan.loaded if plan.loaded is not None else read_checkpoint(plan.checkpoint)
    return loaded.policy(plan.overrides, device=device)


def run_chunk(
    plan: EvalPlan,
    k: int,
    *,
    keep_worst: int = 0,
    device: str | None = None,
    on_clip: Callable[[dict], None] | None = None,
    policy=None,
) -> EvalOutput:
    """Evaluate chunk k of the plan in this process (what one Ray task does). `policy`: the
    (cfg, ActorCritic) of `plan_policy` on `device`, built once for several chunks; else built here."""
    dev = device or plan_device(plan)
    cfg, policy = policy if policy is not None else plan_policy(plan, dev)
    shard = plan.shard(k)
    clip_ids = None
    if plan.max_clips:
        _, store_idx = store_clip_names(cfg, shard)
        clip_ids = [i for i, s in enumerate(store_idx) if s < plan.max_clips]
    return evaluate_policy(
        cfg,
        policy,
        encoders=plan.encoders,
        shard=shard,
        clip_ids=clip_ids,
        num_envs=plan.num_envs,
        device=dev,
        seed=cfg.seed,
        keep_worst=keep_worst,
        on_clip=on_clip,
        blind=plan.blind,
    )


def merge_outputs(outputs: Sequence[EvalOutput], keep_worst: int) -> EvalOutput:
    rows = [r for o in outputs for r in o.rows]
    rows.sort(key=lambda r: (r["clip_index"], r["encoder"]))
    worst = sorted((w for o in outputs for w in o.worst), key=lambda w: worst_first_key(w.row))[:keep_worst]
    return EvalOutput(
        rows=rows,
        worst=worst,
        env_steps=sum(o.env_steps for o in outputs),
        seconds=max((o.seconds for o in outputs), default=0.0),
    )


def render_worst(
    cfg: SonicConfig,
    worst: Sequence[ClipTrajectory],
    videos_dir: Path,
    *,
    several_encoders: bool,
    width: int = 480,
    height: int = 352,
    stride: int = 1,
    on_video: Callable[[str, float], None] | None = None,
) -> dict[str, str]:
    """MP4s of `worst` into videos_dir with the config's robot model; returns {file name: caption}.
    on_video(name, seconds)."""
    model, _ = load_model(cfg.robot.name, mjcf_path=cfg.robot.mjcf_path, timestep=cfg.sim.timestep)
    return video.render_worst(
        model,
        worst,
        videos_dir,
        several_encoders=several_encoders,
        width=width,
        height=height,
        stride=stride,
        on_video=on_video,
    )


def output_meta(plan: EvalPlan, out: EvalOutput) -> dict:
    return {
        "checkpoint": str(plan.checkpoint),
        "iteration": plan.iteration,
        "encoders": list(plan.encoders),
        "overrides": list(plan.overrides),
        "num_tasks": plan.num_tasks,
        "eval_seconds": round(out.seconds, 3),
        "env_steps": out.env_steps,
        "env_steps_per_s": round(out.env_steps / out.seconds, 1) if out.seconds > 0 else None,
    }


def log_metrics(metrics: dict) -> dict[str, float]:
    """metrics.json content -> flat `eval/*` keys for metrics.jsonl, W&B and gauges."""
    out = {f"eval/{k}": metrics[k] for k in LOGGED_KEYS if metrics.get(k) is not None}
    for enc, m in metrics.get("per_encoder", {}).items():
        if len(metrics["per_encoder"]) > 1:
            out.update({f"eval/{enc}/{k}": m[k] for k in LOGGED_KEYS if m.get(k) is not None})
    out["eval/iteration"] = metrics.get("iteration")
    return out


def evaluate_checkpoint_local(
    plan: EvalPlan, out_dir: str | Path, *, render: int = 0, progress: bool = True, stride: int = 1
) -> dict:
    """Evaluate every chunk in this process, render the `render` worst clips, write out_dir.
    Returns the metrics (metrics.json content)."""
    dev = plan_device(plan)
    policy = plan_policy(plan, dev)  # once for every chunk
    with progress_bar(progress, plan.num_clips * (len(plan.encoders) + plan.blind)) as advance:
        outs = [
            run_chunk(plan, k, keep_worst=render, device=dev, policy=policy, on_clip=lambda _row: advance(1))
            for k in range(plan.num_tasks)
        ]
    out = merge_outputs(outs, render)
    return finish(plan, out, out_dir, render=render, progress=progress, stride=stride)


def finish(
    plan: EvalPlan,
    out: EvalOutput,
    out_dir: str | Path,
    *,
    render: int,
    progress: bool = True,
    stride: int = 1,
) -> dict:
    """Render the worst clips (in this process) and write the output directory."""
    out_dir = Path(out_dir)
    videos, timings = {}, []
    if render and out.worst:
        with progress_bar(progress, len(out.worst), label="render") as advance:

            def done(name, seconds):
                timings.append(seconds)
                advance(1)

            videos = render_worst(
                plan.cfg,
                out.worst,
                out_dir / VIDEOS_DIR,
                several_encoders=len(plan.encoders) > 1,
                stride=stride,
                on_video=done,
            )
    meta = {}
    if timings:
        frames = sum(math.ceil(len(w.robot_qpos) / max(stride, 1)) for w in out.worst)
        meta["render_fps"] = round(frames / sum(timings), 2)
    return write_plan_outputs(plan, out, out_dir, videos=videos, **meta)


def write_plan_outputs(
    plan: EvalPlan, out: EvalOutput, out_dir: str | Path, *, videos: dict[str, str] | None = None, **meta
) -> dict:
    """metrics.json (summary, `output_meta`, then `meta`), clips.parquet and report.html of an evaluated
    plan; `videos` {file name: caption} must already be in out_dir/videos. Returns the metrics."""
    return write_outputs(
        Path(out_dir),
        out.rows,
        meta={**output_meta(plan, out), **meta},
        videos=videos,
        title=report_title(plan),
        view_command=view_command(plan),
    )


def report_title(plan: EvalPlan) -> str:
    return f"sonic-ray evaluation: {plan.run_dir.name} {plan.checkpoint.name}"


def view_command(plan: EvalPlan) -> str:
    """The `sonic-ray view policy` command that opens a clip (`{clip}`) of this evaluation."""
    import shlex

    return (
        f"sonic-ray view policy --checkpoint {shlex.quote(str(plan.checkpoint))} "
        f"--motions {shlex.quote(str(motion_store_path(plan.cfg)))} --clip {{clip}}"
    )


@contextlib.contextmanager
def progress_bar(enabled: bool, total: int, label: str = "evaluate"):
    """A rich progress bar (or nothing when disabled); yields advance(n)."""
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
