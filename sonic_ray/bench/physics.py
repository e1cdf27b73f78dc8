"""`sonic-ray bench physics`: raw batched G1 physics throughput of MujocoCpuSim.

Reports env-steps/s (one env-step = `decimation` physics substeps, i.e. one 50 Hz control step
with the state refreshed) for every (num_envs, num_threads) pair, `scale_2_over_1` per num_envs
(2 threads over 1), and a baseline in the same run: one plain `MjData` stepped with `mj_step` in a
Python loop (no state copies), so the sim's own overhead shows as `overhead_vs_plain_1thread`.

Both start from the default standing pose and go back to it every `RESET_EVERY` control steps
(the PD-held robot falls over in about a second, and a fallen robot has more contacts), so the
baseline and the sim step the same kind of states.

Timings are noisy on shared machines (other processes take the cores): compare ratios taken in
one run, and repeat before trusting a number.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import mujoco
import numpy as np
import torch

from sonic_ray.robots.registry import load_model
from sonic_ray.sim.mujoco_cpu import MujocoCpuSim

RESET_EVERY = 50


def _plain_loop(model, *, decimation: int, steps: int) -> float:
    """env-steps/s of one MjData stepped by mj_step in a Python loop, standing under PD."""
    d = mujoco.MjData(model)

    def reset():
        mujoco.mj_resetDataKeyframe(model, d, 0) if model.nkey else mujoco.mj_resetData(model, d)

    reset()
    ctrl = d.ctrl.copy()
    t0 = time.perf_counter()
    for k in range(steps):
        if k % RESET_EVERY == 0:
            reset()
        d.ctrl[:] = ctrl
        mujoco.mj_step(model, d, decimation)
    return steps / (time.perf_counter() - t0)


def _sim_rate(model, robot, *, num_envs: int, num_threads: int, decimation: int, seconds: float) -> float:
    sim = MujocoCpuSim(model, num_envs=num_envs, num_threads=num_threads, decimation=decimation)
    try:
        n = num_envs
        pose = dict(
            root_pos=torch.tensor(robot.default_root_pos).repeat(n, 1),
            root_quat=torch.tensor(robot.default_root_quat).repeat(n, 1),
            root_lin_vel=torch.zeros(n, 3),
            root_ang_vel=torch.zeros(n, 3),
            joint_pos=torch.tensor(robot.default_joint_pos).repeat(n, 1),
            joint_vel=torch.zeros(n, robot.num_joints),
        )
        targets = torch.tensor(robot.default_joint_pos, dtype=torch.float32).repeat(n, 1)
        all_envs = torch.arange(n)
        steps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or steps < RESET_EVERY:
            if steps % RESET_EVERY == 0:
                sim.reset(all_envs, **pose)
            sim.step(targets)
            steps += 1
        return steps * n / (time.perf_counter() - t0)
    finally:
        sim.close()


def run(
    *, num_envs=(64, 256), threads=(1, 2), decimation: int = 4, seconds: float = 2.0, robot: str = "g1"
) -> dict:
    """Throughput table; `seconds` is the timed wall time per configuration."""
    model, spec = load_model(robot)
    plain = _plain_loop(model, decimation=decimation, steps=max(2 * RESET_EVERY, int(1000 * seconds)))
    rows, scale = [], {}
    for n in num_envs:
        rates = {}
        for t in threads:
            rates[t] = _sim_rate(
                model, spec, num_envs=n, num_threads=t, decimation=decimation, seconds=seconds
            )
            rows.append(
                {
                    "num_envs": n,
                    "num_threads": t,
                    "env_steps_per_s": round(rates[t], 1),
                    "env_steps_per_s_per_thread": round(rates[t] / t, 1),
                }
            )
        if 1 in rates and 2 in rates:
            scale[str(n)] = round(rates[2] / rates[1], 3)
    one_thread = [r["env_steps_per_s"] for r in rows if r["num_threads"] == 1]
    return {
        "bench": "physics",
        "robot": robot,
        "decimation": decimation,
        "physics_dt": float(model.opt.timestep),
        "cpu_count": os.cpu_count(),
        "plain_mj_step_env_steps_per_s": round(plain, 1),
        "results": rows,
        "scale_2_over_1": scale,
        "overhead_vs_plain_1thread": round(plain / float(np.mean(one_thread)) - 1.0, 3)
        if one_thread
        else None,
        "note": "shared machine: timings are noisy; compare ratios from the same run",
    }


def _main(args) -> int:
    out = run(
        num_envs=tuple(args.num_envs),
        threads=tuple(args.threads),
        decimation=args.decimation,
        seconds=args.seconds,
        robot=args.robot,
    )
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"plain mj_step loop: {out['plain_mj_step_env_steps_per_s']:.0f} env-steps/s")
        for r in out["results"]:
            print(f"N={r['num_envs']:5d} threads={r['num_threads']}: {r['env_steps_per_s']:9.0f} env-steps/s")
        print(f"scale 2/1: {out['scale_2_over_1']}  overhead vs plain: {out['overhead_vs_plain_1thread']}")
        print(out["note"])
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "physics",
        help="batched G1 physics env-steps/s (MujocoCpuSim), threads 1 vs 2",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--num-envs", type=int, nargs="+", default=[64, 256])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--decimation", type=int, default=4)
    p.add_argument("--seconds", type=float, default=2.0, help="timed wall time per configuration")
    p.add_argument("--robot", default="g1")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_main)
