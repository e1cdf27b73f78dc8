"""`sonic-ray bench learning`: how much a fixed budget of env steps teaches, against doing nothing.

For each seed, `sonic-ray train` itself (the driver's `Trainer` on Ray: env runners, learner,
evaluation tasks beside training) runs `+exp=<preset>` for at least `--env-steps` env steps,
converted into iterations of num_envs x num_steps_per_env x num_env_runners; a checkpoint is
evaluated every `--eval-every-steps` (`callbacks.eval_interval`, rounded up to whole iterations,
the run rounded up to whole intervals so its last iteration is evaluated; the driver waits for
the evaluations still running when training ends). Each seed's run dir keeps everything `train`
writes (metrics.jsonl, checkpoints, eval/, learning_curves.png) plus its stdout in train.log.

The baseline is a policy that always outputs 0 (PD to the default pose), on the same store:
its evaluation is the one the checkpoints get (same env, eval terminations, clips, encoders;
deterministic, so once), and its mean episode length under the training terminations comes from
the training env (`make_env`: training terminations, randomisation as configured, start frames
uniform as at the start of training, since no failure rates are fed back) stepped
`--zero-action-steps` times per seed (episodes still running at the end are not counted).

Writes `<out>/learning.json` (after every seed, atomically) and `<out>/learning.png`; the figures
are described in `sonic_ray.bench.learning_report`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from sonic_ray.bench.learning_report import (
    EVAL_KEYS,
    mean_curve,
    over_zero_action,
    plot,
    schedule,
    seed_curve,
    summary_at,
)
from sonic_ray.cluster import init_ray, joins_existing_cluster
from sonic_ray.config import load_config
from sonic_ray.config.cli import OVERRIDES_HELP
from sonic_ray.envs.factory import make_env, motion_store_path
from sonic_ray.eval.metrics import summarize
from sonic_ray.eval.runner import evaluate_policy, store_clip_names
from sonic_ray.robots import load_model
from sonic_ray.train.driver import Trainer, TrainingStopped
from sonic_ray.train.metrics import read_metrics
from sonic_ray.utils.io import atomic_write

DEFAULT_MARKS = (500_000, 1_000_000)
JSON_NAME, PNG_NAME = "learning.json", "learning.png"


class ZeroPolicy:
    """Action 0 for every env: joint targets at the default pose (what `evaluate_policy` calls)."""

    def __init__(self, action_dim: int):
        self.action_dim = int(action_dim)

    def act_inference(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """obs {group: (N, ...)} -> (N, A) zeros."""
        x = next(iter(obs.values()))
        return torch.zeros(x.shape[0], self.action_dim, device=x.device)


def _device(cfg) -> str:
    return cfg.device if cfg.device.startswith("cuda") and torch.cuda.is_available() else "cpu"


def zero_action_eval(cfg) -> dict:
    """The zero policy through the evaluation the checkpoints get (callbacks.eval_*; one process)."""
    cb = cfg.callbacks
    clip_ids = None
    if cb.eval_max_clips > 0:
        _, store_idx = store_clip_names(cfg, None)
        clip_ids = [i for i, s in enumerate(store_idx) if s < cb.eval_max_clips]
    _, robot = load_model(cfg.robot.name, mjcf_path=cfg.robot.mjcf_path, timestep=cfg.sim.timestep)
    out = evaluate_policy(
        cfg,
        ZeroPolicy(robot.num_joints),
        encoders=cb.eval_encoders,
        clip_ids=clip_ids,
        num_envs=cb.eval_num_envs,
        device=_device(cfg),
        seed=cfg.seed,
    )
    s = summarize(out.rows)
    return {**{k: s[k] for k in EVAL_KEYS}, "num_clips": s["num_clips"], "eval_seconds": out.seconds}


def zero_action_train_length(cfg, *, seed: int, steps: int) -> dict:
    """Mean length of the episodes that end while the training env steps zero actions `steps` times."""
    env = make_env(cfg, seed=seed, device=_device(cfg))
    try:
        zeros = torch.zeros(env.num_envs, env.action_dim, device=env.device)
        for _ in range(steps):
            env.step(zeros)
        m = env.metrics()
    finally:
        env.close()
    return {
        "episode_length": m.get("env/episode_length"),
        "episodes": int(m["env/episodes"]),
        "env_steps": steps * env.num_envs,
    }


def machine_info() -> dict:
    import mujoco
    import ray

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    return {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(mem / 2**30, 1) if mem else None,
        "torch": torch.__version__,
        "mujoco": mujoco.__version__,
        "ray": ray.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def git_info() -> dict:
    """Commit of the source tree the package was imported from, and whether it had local changes."""
    root = Path(__file__).resolve().parents[2]

    def git(*args):
        r = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20)
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _start_ray(cfg) -> bool:
    """Ray as `train` would find it (ray.address, RAY_ADDRESS, a job), else a quiet local one; True
    when this call initialised Ray."""
    import ray

    if ray.is_initialized():
        return False
    if joins_existing_cluster(cfg):
        init_ray(cfg)
    else:  # the runners' stdout would land in the bench's (JSON) output: keep it in Ray's logs
        ray.init(
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore::DeprecationWarning"}},
        )
    return True


def train_seed(cfg, run_dir: Path, *, eval_interval: int, window: int, on_iteration=None) -> dict:
    """One `Trainer` run to cfg.algo.max_iterations (its stdout into run_dir/train.log) -> its figures."""
    if (run_dir / "metrics.jsonl").exists():
        raise FileExistsError(f"{run_dir} already holds a run (metrics.jsonl): choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    error = None
    t_setup = time.perf_counter()
    with open(run_dir / "train.log", "a", encoding="utf-8") as log, contextlib.redirect_stdout(log):
        trainer = Trainer(cfg, run_dir=run_dir)
        setup_s, t0 = time.perf_counter() - t_setup, time.time()
        try:
            trainer.run(on_iteration=on_iteration)
        except TrainingStopped as e:
            error = str(e)
        finally:
            train_s = time.time() - t0
            t_close = time.perf_counter()
            trainer.close()  # waits for the evaluations still running
            close_s = time.perf_counter() - t_close
    rows = read_metrics(run_dir / "metrics.jsonl")
    curve = seed_curve(rows, eval_interval=eval_interval, window=window, t0=t0)
    steps = int(sum(float(r["perf/env_steps"]) for r in rows if "perf/env_steps" in r))
    iters = [int(r["iteration"]) for r in rows if "perf/env_steps" in r]
    return {
        "run_dir": str(run_dir),
        "setup_s": setup_s,
        "train_s": train_s,
        "close_s": close_s,
        "iterations": max(iters, default=0),
        "env_steps": steps,
        "env_steps_per_s": steps / train_s if train_s > 0 else None,
        "curve": curve,
        "missing_evals": [p["iteration"] for p in curve if p["completed_mean"] is None],
        "error": error,
    }


def finish(result: dict, out_dir: Path, marks: Sequence[int]) -> None:
    """Mean curve, summary and deltas from the seeds so far; JSON and PNG written atomically."""
    curves = {s: r["curve"] for s, r in result["seeds"].items()}
    mean = mean_curve(list(curves.values()))
    zero = result["zero_action"]
    for p in mean:
        p["over_zero_action"] = over_zero_action(p, zero)
    result["mean"] = {"curve": mean}
    result["summary"] = summary_at(curves, mean, zero, marks)
    atomic_write(out_dir / JSON_NAME, json.dumps(result, indent=2))
    plot(
        result,
        out_dir / PNG_NAME,
        title=f"sonic-ray bench learning: {result['meta']['exp']}, seeds {', '.join(result['seeds']) or '-'}",
    )


def zero_action(base: Sequence[str], seeds: Sequence[int], *, steps: int) -> dict:
    """The zero-action baseline: its evaluation (deterministic: once, with the first seed's config)
    and its training-termination episode length per seed and in the mean."""
    zero = zero_action_eval(load_config([*base, f"seed={seeds[0]}"]))
    per_seed = {
        str(s): zero_action_train_length(load_config([*base, f"seed={s}"]), seed=int(s), steps=steps)
        for s in seeds
    }
    lengths = [z["episode_length"] for z in per_seed.values() if z["episode_length"] is not None]
    zero["episode_length"] = sum(lengths) / len(lengths) if lengths else None
    return {**zero, "train_per_seed": per_seed}


def run(
    *,
    exp: str = "demo",
    store: str | None = None,
    seeds: Sequence[int] = (0, 1),
    env_steps: int = 1_000_000,
    eval_every_steps: int = 250_000,
    window: int = 10,
    zero_action_steps: int = 250,
    marks: Sequence[int] = DEFAULT_MARKS,
    out_dir: str | Path | None = None,
    overrides: Sequence[str] = (),
    progress: bool = True,
) -> dict:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    out_dir = Path(out_dir or Path("runs") / f"bench-learning-{time.strftime('%Y%m%d-%H%M%S')}")
    # Before the caller's overrides (they may turn W&B back on); checkpoints are all kept so that
    # no evaluation task finds its checkpoint already deleted.
    base = [
        f"+exp={exp}",
        "logging.wandb_mode=disabled",
        "callbacks.checkpoint_keep=0",
        *([f"motions.store={store}"] if store else []),
        *overrides,
    ]
    cfg = load_config(base)
    per_iter = cfg.env.num_envs * cfg.algo.num_steps_per_env * cfg.ray.num_env_runners
    interval, iterations = schedule(per_iter, env_steps, eval_every_steps)
    fixed = [
        f"algo.max_iterations={iterations}",
        f"callbacks.eval_interval={interval}",
        "logging.progress=false",
    ]
    meta = {
        "exp": exp,
        "store": str(Path(motion_store_path(cfg)).resolve()),
        "seeds": [int(s) for s in seeds],
        "env_steps_budget": env_steps,
        "eval_every_steps": eval_every_steps,
        "steps_per_iteration": per_iter,
        "eval_interval_iterations": interval,
        "max_iterations": iterations,
        "env_steps_per_checkpoint": interval * per_iter,
        "episode_length_window": window,
        "zero_action_steps": zero_action_steps,
        "overrides": [*base, *fixed],
        "git": git_info(),
        "machine": machine_info(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "note": "over_zero_action = trained minus zero action (larger is better except mpjpe_l_mm_all); "
        "wall times are noisy when other processes share the cores",
    }
    result = {"bench": "learning", "meta": meta, "seeds": {}}
    console = Console(stderr=True, quiet=not progress)
    console.print(
        f"[bold]bench learning[/]: {exp}, seeds {list(seeds)}, {iterations} iterations x "
        f"{per_iter} env steps, evaluation every {interval} iterations -> {out_dir}"
    )
    with console.status("zero action: evaluation and training-termination episode length"):
        result["zero_action"] = z = zero_action(base, seeds, steps=zero_action_steps)
    console.print(
        f"zero action: episode length {_fmt(z['episode_length'], '.1f')}, "
        f"eval completed {_fmt(z['completed_mean'], '.3f')}"
    )

    started = _start_ray(cfg)
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            for s in seeds:
                task = bar.add_task(f"seed {s}", total=iterations)

                def advance(m, task=task, s=s):
                    length = _fmt(m.get("env/episode_length"), ".1f")
                    bar.update(task, advance=1, description=f"seed {s}: episode length {length}")

                run_dir = out_dir / f"seed_{s}"
                cfg_s = load_config([*base, *fixed, f"seed={s}", f"run_dir={run_dir}"])
                result["seeds"][str(s)] = train_seed(
                    cfg_s, run_dir, eval_interval=interval, window=window, on_iteration=advance
                )
                finish(result, out_dir, marks)
    finally:
        if started:
            import ray

            ray.shutdown()
    finish(result, out_dir, marks)
    result["json"], result["png"] = str(out_dir / JSON_NAME), str(out_dir / PNG_NAME)
    return result


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _row(name: str, p: dict) -> str:
    steps = "" if p.get("env_steps") is None else f"{p['env_steps']:,.0f}"
    return (
        f"{name:>12} {steps:>10} {_fmt(p.get('wall_s'), '.0f'):>7} {_fmt(p['episode_length'], '.1f'):>7} "
        f"{_fmt(p['completed_mean'], '.3f'):>9} {_fmt(p['success_rate'], '.3f'):>7} "
        f"{_fmt(p['mpjpe_l_mm_all'], '.1f'):>8}"
    )


def _main(args) -> int:
    out = run(
        exp=args.exp,
        store=args.store,
        seeds=args.seeds,
        env_steps=args.env_steps,
        eval_every_steps=args.eval_every_steps,
        window=args.window,
        zero_action_steps=args.zero_action_steps,
        marks=args.marks,
        out_dir=args.out,
        overrides=args.overrides,
        progress=not args.no_progress,
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    head = ("", "env steps", "wall s", "ep len", "completed", "success", "mpjpe mm")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, (12, 10, 7, 7, 9, 7, 8))))
    print(_row("zero action", out["zero_action"]))
    for p in out["mean"]["curve"]:
        print(_row("mean", p))
    for mark, s in out["summary"].items():
        d = s["over_zero_action"]
        print(
            f"at {mark}: over zero action: episode length {_fmt(d['episode_length'], '+.1f')}, completed "
            f"{_fmt(d['completed_mean'], '+.3f')}, success {_fmt(d['success_rate'], '+.3f')}"
        )
    for s, r in out["seeds"].items():
        if r["error"] or r["missing_evals"]:
            print(
                f"seed {s}: error {r['error']}; checkpoints without evaluation {r['missing_evals']}",
                file=sys.stderr,
            )
    print(f"{out['json']}\n{out['png']}")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "learning", help="sample efficiency: train N env steps per seed, eval curves against zero action"
    )
    p.add_argument(
        "overrides",
        nargs="*",
        help=OVERRIDES_HELP + " for every seed (before --seeds/--marks, or after --); the bench "
        "sets seed, run_dir, algo.max_iterations and callbacks.eval_interval itself",
    )
    p.add_argument("--exp", default="demo", help="preset: +exp=EXP (default demo)")
    p.add_argument("--store", default=None, help="motion store (motions.store=...; default: synthetic set)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument(
        "--env-steps",
        type=int,
        default=1_000_000,
        help="budget per seed (rounded up to whole evaluation intervals)",
    )
    p.add_argument(
        "--eval-every-steps", type=int, default=250_000, help="env steps between evaluated checkpoints"
    )
    p.add_argument(
        "--window", type=int, default=10, help="iterations averaged for the episode length at a point"
    )
    p.add_argument(
        "--zero-action-steps",
        type=int,
        default=250,
        help="steps of the training env (all its envs) under zero action, per seed",
    )
    p.add_argument("--marks", type=int, nargs="+", default=list(DEFAULT_MARKS), help="env steps summarised")
    p.add_argument("--out", default=None, help="output dir (default runs/bench-learning-<time>)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--json", action="store_true", help="print the result as JSON (also in OUT/learning.json)")
    p.set_defaults(func=_main)
