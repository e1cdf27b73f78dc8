"""Child processes of `sonic-ray bench motion`: one runner or one driver start-up, measured alone.

`python -m sonic_ray.bench.motion_probe runner|steps|driver JSON_ARGS` prints one JSON line. A
fresh process per measurement, so resident memory is the runner's own (no bench state) and the
driver's start-up is cold (the manifest cache empty). `steps` times the reference modes' envs in one
process, their steps interleaved, so a load on the machine weighs on every mode alike and the
ratios hold where the absolute times drift.
"""

from __future__ import annotations

import gc
import json
import sys
import time


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        import os

        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _cfg(store: str, mode: str, num_envs: int, overrides=()):
    from sonic_ray.config import load_config

    return load_config(
        [
            f"motions.store={store}",
            f"motions.reference={mode}",
            f"env.num_envs={num_envs}",
            "device=cpu",
            "sim.backend=mujoco",
            *overrides,
        ]
    )


def runner(
    store: str, shard: list[int], mode: str, num_envs: int = 16, steps: int = 20, queries: int = 4096
) -> dict:
    """An env runner's env on shard (k, n): RSS once built and stepped, step and reference costs."""
    import torch

    from sonic_ray.envs.factory import make_env

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    env = make_env(_cfg(store, mode, num_envs), shard=tuple(shard), seed=0)
    build_s = time.perf_counter() - t0
    env.reset()
    zero = torch.zeros(env.num_envs, env.action_dim)
    for _ in range(3):
        env.step(zero)
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(zero)
    step_ms = 1e3 * (time.perf_counter() - t0) / steps
    gc.collect()
    # RSS before the 4096-query check below, which allocates its own command
    out = {
        "rss_bytes": rss_bytes(),
        "build_s": build_s,
        "env_step_ms": step_ms,
        "num_envs": num_envs,
        "reference_rows": int(env.cmd.table.data["joint_pos"].shape[0]),
        "table_bytes": env.cmd.table.nbytes(),
    }
    if mode != "window":  # windows are per env: 4096 envs' windows would be ~0.5 GB on their own
        out.update(_queries(env, queries))
    return out


def steps(
    store: str, shard: list[int], modes: list[str], num_envs: int = 256, steps: int = 20, overrides=()
) -> dict:
    """env_step_ms of each reference mode's env (same seed, zero actions: the same episodes), the
    modes' steps interleaved in this one process; resets_per_step (envs reset per step, what the
    on-demand modes pay FK for) and, for window, the reference frames it computed per step (full
    ones, light ones). `overrides`: config overrides for every mode (e.g. other terminations).
    env_step_cpu_ms_<mode>: the same steps in this thread's CPU time, which the other processes of
    a loaded machine do not inflate (physics runs in this thread with sim.num_threads 1)."""
    import torch

    from sonic_ray.envs.factory import make_env

    torch.set_num_threads(1)
    envs = {m: make_env(_cfg(store, m, num_envs, overrides), shard=tuple(shard), seed=0) for m in modes}
    zero = torch.zeros(num_envs, next(iter(envs.values())).action_dim)
    for env in envs.values():
        env.reset()
        for _ in range(3):
            env.step(zero)
    counters = ("rows_computed", "light_rows_computed")
    rows0 = {(m, c): getattr(e.cmd.table, c, 0) for m, e in envs.items() for c in counters}
    spent, cpu, resets = dict.fromkeys(modes, 0.0), dict.fromkeys(modes, 0.0), dict.fromkeys(modes, 0)
    for _ in range(steps):
        for m, env in envs.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            info = env.step(zero)[4]
            spent[m] += time.perf_counter() - t0
            cpu[m] += time.thread_time() - c0
            resets[m] += len(info["done_ids"])
    out = {f"env_step_ms_{m}": 1e3 * spent[m] / steps for m in modes}
    out.update({f"env_step_cpu_ms_{m}": 1e3 * cpu[m] / steps for m in modes})
    out.update({f"resets_per_step_{m}": resets[m] / steps for m in modes})
    for m, e in envs.items():
        if hasattr(e.cmd.table, "rows_computed"):
            full, light = ((getattr(e.cmd.table, c) - rows0[m, c]) / steps for c in counters)
            out[f"frames_computed_per_step_{m}"], out[f"light_frames_computed_per_step_{m}"] = full, light
    return out


def _queries(env, n: int) -> dict:
    """Reference reset (resample: clips drawn, cached ones computed) and step (gather + advance) for
    n envs' worth of queries through the env's own MotionCommand type and table."""
    import torch

    from sonic_ray.envs.command import MotionCommand

    c = env.cmd
    cmd = MotionCommand(
        c.table,
        c.sampler,
        num_envs=n,
        anchor_body=c.body_names[c.anchor_index],
        joint_names=env.robot_spec.joint_names,
        joint_lower=env.robot_spec.joint_lower,
        joint_upper=env.robot_spec.joint_upper,
        step_dt=1.0 / c.table.fps,
    )
    g = torch.Generator().manual_seed(0)
    ids = torch.arange(n)
    t0 = time.perf_counter()
    cmd.resample(ids, g)
    cmd.update_reference()
    reset_ms = 1e3 * (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(10):
        cmd.advance()
        cmd.update_reference()
        cmd.future("body_pos_w")
    return {"reset_4096_ms": reset_ms, "step_4096_ms": 1e3 * (time.perf_counter() - t0) / 10}


def driver(store: str) -> dict:
    """What the training driver does before Ray: config, probe env (one clip), global bin count."""
    t0 = time.perf_counter()
    from sonic_ray.envs.factory import global_num_bins
    from sonic_ray.train.build import probe_env

    imports_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cfg = _cfg(store, "table", 16)
    probe_env(cfg)
    global_num_bins(cfg)
    return {"driver_start_s": time.perf_counter() - t0, "imports_s": imports_s, "rss_bytes": rss_bytes()}


if __name__ == "__main__":
    kind, args = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps({"runner": runner, "steps": steps, "driver": driver}[kind](**args)))
