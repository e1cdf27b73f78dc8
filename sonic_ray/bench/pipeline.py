"""`sonic-ray bench pipeline`: full training throughput through Ray against one process, in one run.

Smoke-sized runs of the same config (demo preset, N envs per runner, T steps per env):
- `inprocess`: `InProcessTrainer` (same collector, batch preparation and PPOUpdater, no Ray), torch
  on `torch_threads` threads;
- `ray_1`: the real `Trainer` (SonicPPO on a local Ray started here with `num_cpus`), 1 env runner,
  the learner in the driver (num_learners=0) on the same `torch_threads` (`ray.learner_threads`);
- `ray_1_demo_threads`: as `ray_1` with the preset's own `ray.learner_threads` (the demo gives its
  local learner 2 threads, since the runner is idle while it learns); skipped when that is equal;
- `ray_2`: as `ray_1` with 2 env runners (each steps N envs, so an iteration samples 2 N T steps).
Each does `warmup` iterations, then `iterations` timed ones; figures are medians over the timed ones.

Reported: env-steps/s of a whole iteration (wall clock around `Trainer.step` / `iterate`, so driver
overhead counts); `ray_over_inprocess` (equal learner threads: like for like) and
`ray_over_inprocess_demo_threads` (the preset's learner threads on the Ray side, as `train` runs it);
sampling env-steps/s (steps / `perf/time_sample_s`, the
algorithm's sample phase: runner rollouts + object-store puts + the RPC) and
`scale_2_runners_over_1`; seconds per phase (sample, learn, sync, other = wall - the three);
`bytes_per_transition` = `FlatBatch.nbytes()` / (T N) as the runner ships it (every observation
group of the current step in float32, encoder index int8, actions, logp, action mean, rewards, the
two flags as bool, plus the per-rollout action std, last critic obs and truncated episodes' final
critic obs, amortised) against `naive_bytes_per_transition` = one float32 copy of every observation
group per transition (4 bytes x the summed group widths, encoder index included): what the
observations alone cost shipped naively, so `bytes_over_naive` is the shipped batch's overhead (or
saving) over the observations themselves. `bytes_per_transition` is of the configured
`ray.rollout_format` (compact by default); `rollout_bytes` gives full and compact side by side at the
demo (128 envs) and release (4,096 envs) layouts (bench/rollout_bytes.py), with
`bytes_per_transition_full` / `_compact` and `compact_over_full` of the demo's. Timings on a shared
2-core machine are noisy.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time

import torch

PHASES = ("perf/time_sample_s", "perf/time_learn_s", "perf/time_sync_s")


def _overrides(exp: str, num_envs: int, num_steps: int, extra=()) -> list[str]:
    return [
        f"+exp={exp}",
        "device=cpu",
        "sim.backend=mujoco",
        f"env.num_envs={num_envs}",
        f"algo.num_steps_per_env={num_steps}",
        "logging.wandb_mode=disabled",
        "logging.progress=false",
        "callbacks.plot_learning_curves=false",
        *extra,
    ]


def _summary(rows: list[dict]) -> dict:
    """Medians over the timed iterations of a run."""
    for r in rows:
        r["other"] = r["wall"] - sum(v for k, v in r.items() if k in PHASES)
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    name = {k: k.split("/")[-1].removeprefix("time_").removesuffix("_s") for k in med}
    out = {
        "iterations": len(rows),
        "env_steps": med["steps"],
        "wall_s": med["wall"],
        "env_steps_per_s": statistics.median(r["steps"] / r["wall"] for r in rows),
        "sample_steps_per_s": statistics.median(r["steps"] / r["perf/time_sample_s"] for r in rows),
        # sample/learn/sync: the algorithm's phases; other: driver time outside them (wall - the three)
        "phase_s": {name[k]: med[k] for k in (*PHASES, "other") if k in med},
    }
    inside = {name[k]: med[k] for k in ("perf/runner_sample_s", "perf/runner_put_s") if k in med}
    if inside:  # inside the sample phase, as the runner saw it: stepping vs ray.put of the slices
        out["runner_phase_s"] = inside
    return out


def measure_ray(cfg, *, warmup: int, iterations: int) -> tuple[dict, dict]:
    """Timed `Trainer.step`s on the Ray already started; -> (summary, last metrics)."""
    from sonic_ray.train.driver import Trainer

    with tempfile.TemporaryDirectory(prefix="sonic-bench-") as run_dir:
        tr = Trainer(cfg, run_dir=run_dir)
        try:
            rows, m = [], {}
            for i in range(warmup + iterations):
                t = time.perf_counter()
                m = tr.step()
                wall = time.perf_counter() - t
                if i >= warmup:
                    row = {"wall": wall, "steps": m["perf/env_steps"]}
                    row.update({k: m[k] for k in (*PHASES, "perf/runner_sample_s", "perf/runner_put_s")})
                    rows.append(row)
        finally:
            tr.close()
    return _summary(rows), m


def measure_inprocess(cfg, *, warmup: int, iterations: int) -> tuple[dict, dict[str, int], int]:
    """Timed `InProcessTrainer.iterate`s; -> (summary, obs dims, action dim)."""
    from sonic_ray.ppo.trainer import InProcessTrainer

    tr = InProcessTrainer(cfg)
    try:
        rows = []
        for i in range(warmup + iterations):
            t = time.perf_counter()
            m = tr.iterate()
            wall = time.perf_counter() - t
            if i >= warmup:
                rows.append(
                    {
                        "wall": wall,
                        "steps": m["perf/env_steps"],
                        "perf/time_sample_s": m["perf/time_sample_s"],
                        "perf/time_learn_s": m["perf/time_learn_s"],
                    }
                )
        dims, action_dim = tr.env.obs_dims(), tr.env.action_dim
    finally:
        tr.env.close()
    return _summary(rows), dims, action_dim


def naive_bytes_per_transition(obs_dims: dict[str, int]) -> int:
    """One float32 copy of every observation group (encoder index included) of a transition."""
    return 4 * sum(obs_dims.values())


def run(
    *,
    exp: str = "demo",
    num_envs: int = 64,
    num_steps: int = 24,
    warmup: int = 1,
    iterations: int = 3,
    num_cpus: int = 2,
    torch_threads: int = 1,
    overrides=(),
    **_,
) -> dict:
    import ray

    from sonic_ray.config import load_config

    torch.set_num_threads(torch_threads)
    base = _overrides(exp, num_envs, num_steps, overrides)
    result = {
        "bench": "pipeline",
        "meta": {
            "exp": exp,
            "num_envs_per_runner": num_envs,
            "num_steps": num_steps,
            "warmup": warmup,
            "iterations": iterations,
            "ray_num_cpus": num_cpus,
            "torch_threads": torch_threads,
            "overrides": base,
            "note": "medians; timings are noisy when other processes share the cores",
        },
    }
    demo_threads = load_config(base).ray.learner_threads  # 0: one per CPU of the learner
    equal = [*base, f"ray.learner_threads={torch_threads}"]  # the Ray learner on the in-process threads
    result["meta"].update({"learner_threads": torch_threads, "demo_learner_threads": demo_threads})
    inproc, obs_dims, action_dim = measure_inprocess(load_config(base), warmup=warmup, iterations=iterations)
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONWARNINGS": "ignore"}},
    )
    try:
        timed = {"warmup": warmup, "iterations": iterations}
        ray1, last = measure_ray(load_config([*equal, "ray.num_env_runners=1"]), **timed)
        ray2, _ = measure_ray(load_config([*equal, "ray.num_env_runners=2"]), **timed)
        ray1_demo = ray1
        if demo_threads != torch_threads:
            ray1_demo, _ = measure_ray(load_config([*base, "ray.num_env_runners=1"]), **timed)
    finally:
        ray.shutdown()
        torch.set_num_threads(torch_threads)  # the local learners set the driver's threads
    result.update(
        {
            "inprocess": inproc,
            "ray_1": ray1,
            "ray_1_demo_threads": ray1_demo,
            "ray_2": ray2,
            "ray_over_inprocess": ray1["env_steps_per_s"] / inproc["env_steps_per_s"],
            "ray_over_inprocess_demo_threads": ray1_demo["env_steps_per_s"] / inproc["env_steps_per_s"],
            "scale_2_runners_over_1": ray2["sample_steps_per_s"] / ray1["sample_steps_per_s"],
            "bytes_per_transition": last["perf/bytes_per_transition"],
            "naive_bytes_per_transition": naive_bytes_per_transition(obs_dims),
            "obs_dims": obs_dims,
            "action_dim": action_dim,
        }
    )
    result["bytes_over_naive"] = result["bytes_per_transition"] / result["naive_bytes_per_transition"]
    # Full vs compact rollout format (ray.rollout_format) at the demo and release layouts.
    from sonic_ray.bench.rollout_bytes import by_layout

    layouts = result["rollout_bytes"] = by_layout()
    result.update(
        {
            "bytes_per_transition_full": layouts["demo"]["full"],
            "bytes_per_transition_compact": layouts["demo"]["compact"],
            "compact_over_full": layouts["demo"]["compact_over_full"],
            "release_compact_over_full": layouts["release"]["compact_over_full"],
        }
    )
    return result


def _main(args) -> int:
    out = run(
        exp=args.exp,
        num_envs=args.num_envs,
        num_steps=args.num_steps,
        warmup=args.warmup,
        iterations=args.iterations,
        num_cpus=args.num_cpus,
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for name in ("inprocess", "ray_1", "ray_1_demo_threads", "ray_2"):
        r = out[name]
        phases = " ".join(f"{k} {v:.3f}s" for k, v in r["phase_s"].items())
        print(
            f"{name:18s} {r['env_steps_per_s']:8.0f} env-steps/s  "
            f"sampling {r['sample_steps_per_s']:8.0f}/s  {phases}"
        )
    for k in (
        "ray_over_inprocess",
        "ray_over_inprocess_demo_threads",
        "scale_2_runners_over_1",
        "bytes_per_transition",
        "naive_bytes_per_transition",
        "bytes_per_transition_full",
        "bytes_per_transition_compact",
        "compact_over_full",
        "release_compact_over_full",
    ):
        print(f"{k}: {out[k]:.3f}")
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "pipeline", help="training env-steps/s: Ray vs in-process, 2 runners vs 1, bytes"
    )
    p.add_argument("--exp", default="demo")
    p.add_argument("--num-envs", type=int, default=64, help="N envs per runner")
    p.add_argument("--num-steps", type=int, default=24, help="T steps per env per iteration")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray started for the bench")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_main)
