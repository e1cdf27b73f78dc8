"""`sonic-ray bench env`: full tracking-env steps/s against raw physics steps/s, in one run.

For each N envs x simulator threads: the env is built from the config (demo preset by default)
and timed twice on the same simulator: raw physics (`sim.step` with the default pose as target,
nothing else) and the full `TrackingEnv.step` (actions -> targets, physics, command, terminations,
rewards, observations of all groups, autoresets of envs that fell), both driven by the same
random actions (std 0.1, so robots fall and reset as an untrained policy's do). Reported: env-steps/s of both,
`env_over_physics` (the share of physics speed the MDP keeps; target >= 0.85) and
`scale_2_over_1` (steps/s at the largest thread count over 1 thread; target >= 1.8 for 2).

The two loops do not step the same physics: the env resets fallen robots to moving reference
poses every step, which costs MuJoCo more per step (contacts) than the raw loop's robots, which
fall once and lie still (measured at N=64: ~22 ms vs ~14-17 ms per step). So each point also times
`sim.step` inside the env loop: `mdp_ms_per_step` (everything but physics) and
`env_over_in_env_physics` (physics time / env time on the env's own workload).
Timings taken while other processes share the cores are noisy.
"""

from __future__ import annotations

import json
import time

import torch


def _time(fn, steps: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return time.perf_counter() - t


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(cfg, *, num_envs: int, steps: int, warmup: int, action_std: float = 0.1, seed: int = 0) -> dict:
    """One (N, threads) point: physics and env steps/s on the same simulator."""
    from sonic_ray.envs.factory import make_env

    env = make_env(cfg, num_envs=num_envs, seed=seed)
    dev = env.device
    try:
        g = torch.Generator().manual_seed(seed)
        actions = [(action_std * torch.randn(num_envs, env.action_dim, generator=g)).to(dev) for _ in range(8)]
        targets = [env.default_joint_pos + env.action_scale * a for a in actions]
        k = iter(range(10**9))
        phys_s = _time(lambda: env.sim.step(targets[next(k) % 8]), steps, warmup, dev)
        env.reset()
        sim_step, in_loop = env.sim.step, [0.0]

        def timed_sim_step(targets):  # the physics inside env.step, timed on the env's own workload
            t = time.perf_counter()
            sim_step(targets)
            _sync(dev)
            in_loop[0] += time.perf_counter() - t

        env.sim.step = timed_sim_step
        for _ in range(warmup):
            env.step(actions[next(k) % 8])
        in_loop[0] = 0.0
        env_s = _time(lambda: env.step(actions[next(k) % 8]), steps, 0, dev)
        env.sim.step = sim_step
        resets = env.metrics().get("env/episodes", 0.0)
    finally:
        env.close()
    phys, full = num_envs * steps / phys_s, num_envs * steps / env_s
    return {"num_envs": num_envs, "threads": int(cfg.sim.num_threads), "backend": cfg.sim.backend,
            "device": str(dev), "physics_steps_per_s": phys,
            "env_steps_per_s": full, "env_over_physics": full / phys,
            "env_ms_per_step": 1e3 * env_s / steps, "physics_ms_per_step": 1e3 * phys_s / steps,
            "in_env_physics_ms_per_step": 1e3 * in_loop[0] / steps,
            "mdp_ms_per_step": 1e3 * (env_s - in_loop[0]) / steps,
            "env_over_in_env_physics": in_loop[0] / env_s,
            "episodes_ended": resets}


def run(*, num_envs=(64, 256), threads=(1, 2), steps: int = 100, warmup: int = 10, exp: str = "demo",
        store: str | None = None, overrides=(), torch_threads: int = 1, backend: str = "mujoco",
        device: str = "cpu", **_) -> dict:
    from sonic_ray.config import load_config

    # The simulator's threads own the cores; torch's own intra-op pool competing with them made
    # each small MDP op ~30x slower here (measured: 105 vs 27 ms per step at N=64).
    torch.set_num_threads(torch_threads)
    points = []
    for n in num_envs:
        for t in threads:
            ov = [f"+exp={exp}", f"sim.num_threads={t}", f"device={device}", f"sim.backend={backend}", *overrides]
            if store:
                ov.append(f"motions.store={store}")
            points.append(measure(load_config(ov), num_envs=n, steps=steps, warmup=warmup))
    t_lo, t_hi = min(threads), max(threads)
    scale = {}
    for n in num_envs:
        by_t = {p["threads"]: p for p in points if p["num_envs"] == n}
        if t_hi != t_lo:
            scale[str(n)] = {"env": by_t[t_hi]["env_steps_per_s"] / by_t[t_lo]["env_steps_per_s"],
                             "physics": by_t[t_hi]["physics_steps_per_s"] / by_t[t_lo]["physics_steps_per_s"]}
    return {"bench": "env", "exp": exp, "backend": backend, "device": device, "steps": steps, "points": points,
            f"scale_{t_hi}_over_{t_lo}": scale,
            "min_env_over_physics": min(p["env_over_physics"] for p in points),
            "note": "timings are noisy when other processes share the CPU cores"}


def _main(args) -> int:
    out = run(num_envs=tuple(args.num_envs), threads=tuple(args.threads), steps=args.steps, warmup=args.warmup,
              exp=args.exp, store=args.store, backend=args.backend, device=args.device,
              overrides=tuple(args.overrides))
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for p in out["points"]:
            print(f"N={p['num_envs']:5d} threads={p['threads']}  physics {p['physics_steps_per_s']:9.0f}/s  "
                  f"env {p['env_steps_per_s']:9.0f}/s  env/physics {p['env_over_physics']:.2f}  "
                  f"(in-env physics {p['in_env_physics_ms_per_step']:.1f} ms + MDP {p['mdp_ms_per_step']:.1f} ms "
                  f"per step: {p['env_over_in_env_physics']:.2f})")
        for k, v in out.items():
            if k.startswith("scale_"):
                print(k, json.dumps(v))
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("env", help="tracking env steps/s vs raw physics (N x threads)")
    p.add_argument("--num-envs", type=int, nargs="+", default=[64, 256])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--exp", default="demo")
    p.add_argument("--store", default=None, help="motion store (default: the config's, or the synthetic set)")
    p.add_argument("--backend", default="mujoco", choices=["mujoco", "mujoco_warp"],
                   help="simulator backend (threads only matter for mujoco)")
    p.add_argument("--device", default="cpu", help="torch device of the env (and of warp: cpu or cuda:N)")
    p.add_argument("--json", action="store_true")
    p.add_argument("overrides", nargs="*", help="config overrides (key=value)")
    p.set_defaults(func=_main)
