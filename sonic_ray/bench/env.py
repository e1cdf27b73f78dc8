"""`sonic-ray bench env`: full tracking-env steps/s against raw physics steps/s, in one run.

For each N envs x simulator threads, one env is built from the config (demo preset by default)
and driven by random actions (std 0.1, so robots fall and reset as an untrained policy's do):

1. The full `TrackingEnv.step` is timed (actions -> targets, physics, command, terminations,
   rewards, observations of all groups, autoresets). Every call it makes into the simulator
   (`step`, `reset`, `push`, the randomisation hooks) is recorded with its arguments.
2. Raw physics: the simulator is put back in the state it had before (1) (`get_state`/`set_state`)
   and the recorded calls are replayed and timed with nothing else between them: the same
   batched physics the env stepped (same resets to moving reference poses, same targets), as a
   hand-written loop over the simulator would run it. The replay must land on the same final
   state as the env did (`replay_exact`), which shows it stepped the same physics.

The steps run in rounds (env, then replay of that round), so slow drifts of a shared machine do
not land on one side only. With more than one thread count, `machine` gives what the cores allow:
bare `mj_step` in N threads (no Python between calls) over one thread, the ceiling of any
thread scaling measured here.

Reported: env-steps/s of both, `env_over_physics` (the share of physics speed the MDP keeps;
target >= 0.85), `mdp_ms_per_step` (everything but the simulator calls), and `scale_2_over_1`
(steps/s at the largest thread count over 1 thread; target >= 1.8 for 2). Also
`fixed_pose_physics_steps_per_s`: `sim.step` with the default pose as target and no resets, so the
robots fall once and lie still, which MuJoCo steps more cheaply than the env's workload (the
comparison this bench used before; kept for reference, not for the ratio).
Timings taken while other processes share the cores are noisy.

`--backend isaaclab` (Isaac Lab 3 / Newton, .venv-isaaclab) measures MuJoCo CPU (1 thread) at the
same N in the same run, and `build_s` / `first_step_s` (make_env, and the first physics step, which
compiles Warp's kernels unless they are in Warp's cache: run with an empty `WARP_CACHE_PATH` for the
first-run figure). A backend without a snapshot (`get_state` raising NotImplementedError) gets its
sim calls timed inside the env steps as its physics figures (`replay_exact` null) instead of a replay.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time

import torch

from sonic_ray.config import load_config
from sonic_ray.envs.factory import make_env
from sonic_ray.robots import load_model

# BatchedSim calls the env makes, recorded for the physics replay (nonfinite_envs, a read-only
# check, stays on the env's side).
SIM_CALLS = (
    "step",
    "reset",
    "push",
    "set_friction",
    "set_restitution",
    "set_body_mass_scale",
    "set_com_offset",
)


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


def _frozen(x):
    """A recorded argument, safe from later in-place changes (tensors and arrays are copied)."""
    if isinstance(x, torch.Tensor):
        return x.clone()
    if hasattr(x, "copy") and hasattr(x, "shape"):
        return x.copy()
    return x


class _Recorder:
    """Wraps a sim's public calls: each call is timed and kept (name, args, kwargs) for replay."""

    def __init__(self, sim, device: torch.device):
        self.sim, self.device, self.calls, self.seconds = sim, device, [], 0.0
        for name in SIM_CALLS:
            fn = getattr(sim, name, None)
            if fn is not None:
                setattr(sim, name, self._wrap(name, fn))

    def _wrap(self, name, fn):
        def call(*args, **kwargs):
            self.calls.append(
                (name, tuple(_frozen(a) for a in args), {k: _frozen(v) for k, v in kwargs.items()})
            )
            t = time.perf_counter()
            fn(*args, **kwargs)
            _sync(self.device)
            self.seconds += time.perf_counter() - t

        return call

    def remove(self) -> None:
        for name in SIM_CALLS:
            self.sim.__dict__.pop(name, None)


# Fields of the simulator state the replay must reproduce bit for bit (`replay_exact`).
EXACT_FIELDS = ("root_pos_w", "root_quat_w", "joint_pos", "joint_vel", "body_pos_w")


def measure(
    cfg, *, num_envs: int, steps: int, warmup: int, action_std: float = 0.1, seed: int = 0, rounds: int = 3
) -> dict:
    """One (N, threads) point: env steps/s, and physics steps/s replaying the env's own sim calls.

    `steps` env steps in `rounds` rounds; each round times the env, then rewinds the simulator to
    the round's start and replays the round's calls, which must leave it where the env left it
    (so the next round goes on from there). Alternating the two keeps slow drifts of a shared
    machine from landing on one side only."""
    t0 = time.perf_counter()
    env = make_env(cfg, num_envs=num_envs, seed=seed)
    build_s = time.perf_counter() - t0
    dev = env.device
    env_s = phys_s = in_loop = 0.0
    calls, replay_exact = 0, True
    try:
        g = torch.Generator().manual_seed(seed)
        actions = [
            (action_std * torch.randn(num_envs, env.action_dim, generator=g)).to(dev) for _ in range(8)
        ]
        targets = [env.default_joint_pos + env.action_scale * a for a in actions]
        k = iter(range(10**9))
        t0 = time.perf_counter()
        env.sim.step(targets[0])
        _sync(dev)
        first_step_s = time.perf_counter() - t0
        fixed_s = _time(lambda: env.sim.step(targets[next(k) % 8]), steps, warmup, dev)
        env.reset()
        for _ in range(warmup):
            env.step(actions[next(k) % 8])
        env.metrics()
        per_round = [len(c) for c in torch.arange(steps).tensor_split(rounds) if len(c)]
        replay = _has_snapshot(env.sim)
        for n_steps in per_round:
            start = env.sim.get_state() if replay else None
            rec = _Recorder(env.sim, dev)
            try:
                env_s += _time(lambda: env.step(actions[next(k) % 8]), n_steps, 0, dev)
            finally:
                rec.remove()
            if not replay:  # physics = the env's own sim calls, timed where they ran
                phys_s += rec.seconds
                in_loop += rec.seconds
                calls += len(rec.calls)
                continue
            end = env.robot.clone()
            env.sim.set_state(start)
            _sync(dev)
            t = time.perf_counter()
            for name, args, kwargs in rec.calls:
                getattr(env.sim, name)(*args, **kwargs)
            _sync(dev)
            phys_s += time.perf_counter() - t
            in_loop += rec.seconds
            calls += len(rec.calls)
            replay_exact &= all(torch.equal(getattr(end, f), getattr(env.robot, f)) for f in EXACT_FIELDS)
        resets = env.metrics().get("env/episodes", 0.0)
    finally:
        env.close()
    phys, full = num_envs * steps / phys_s, num_envs * steps / env_s
    return {
        "num_envs": num_envs,
        "threads": int(cfg.sim.num_threads),
        "backend": cfg.sim.backend,
        "device": str(dev),
        "compile": bool(cfg.env.compile),
        "physics_steps_per_s": phys,
        "env_steps_per_s": full,
        "env_over_physics": full / phys,
        "env_ms_per_step": 1e3 * env_s / steps,
        "physics_ms_per_step": 1e3 * phys_s / steps,
        "in_env_physics_ms_per_step": 1e3 * in_loop / steps,
        "mdp_ms_per_step": 1e3 * (env_s - in_loop) / steps,
        "env_over_in_env_physics": in_loop / env_s,
        "sim_calls": calls,
        "replay_exact": replay_exact if replay else None,
        "rounds": len(per_round),
        "build_s": build_s,
        "first_step_s": first_step_s,
        "fixed_pose_physics_steps_per_s": num_envs * steps / fixed_s,
        "episodes_ended": resets,
    }


def _has_snapshot(sim) -> bool:
    try:
        sim.get_state()
    except NotImplementedError:
        return False
    return True


def machine_scale(
    model, *, threads: int, envs_per_thread: int = 16, seconds: float = 1.0, repeats: int = 3
) -> dict:
    """What the cores give with no Python in the way: `threads` threads each stepping its own
    `envs_per_thread` MjData with `mj_step` (which releases the GIL) for `seconds`, against one
    thread stepping the same number of MjData per thread; interleaved `repeats` times, median ratio.
    The ceiling for any 2-thread scaling of the env on this machine."""
    import statistics
    import threading

    import mujoco

    def rate(n_threads: int) -> float:
        datas = [[mujoco.MjData(model) for _ in range(envs_per_thread)] for _ in range(n_threads)]
        counts = [0] * n_threads
        stop = time.perf_counter() + seconds

        def work(i: int) -> None:
            while time.perf_counter() < stop:
                for d in datas[i]:
                    mujoco.mj_step(model, d, 4)
                counts[i] += len(datas[i])

        ts = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return sum(counts) / seconds

    ratios, one = [], []
    for _ in range(repeats):
        r1 = rate(1)
        ratios.append(rate(threads) / r1)
        one.append(r1)
    return {
        "threads": threads,
        "envs_per_thread": envs_per_thread,
        "seconds": seconds,
        "mj_step_scale": statistics.median(ratios),
        "mj_step_scale_all": ratios,
        "one_thread_env_steps_per_s": statistics.median(one),
    }


def run(
    *,
    num_envs=(64, 256),
    threads=(1, 2),
    steps: int = 100,
    warmup: int = 10,
    exp: str = "demo",
    store: str | None = None,
    overrides=(),
    torch_threads: int = 1,
    backend: str = "mujoco",
    device: str = "cpu",
    **_,
) -> dict:
    # The simulator's threads own the cores; torch's own intra-op pool competing with them made
    # each small MDP op ~30x slower here (measured: 105 vs 27 ms per step at N=64).
    torch.set_num_threads(torch_threads)
    points = []
    for n in num_envs:
        for t in threads:
            ov = [
                f"+exp={exp}",
                f"sim.num_threads={t}",
                f"device={device}",
                f"sim.backend={backend}",
                *overrides,
            ]
            if store:
                ov.append(f"motions.store={store}")
            points.append(measure(load_config(ov), num_envs=n, steps=steps, warmup=warmup))
        if backend == "isaaclab":  # the reference beside it, same N, same run
            ov = [f"+exp={exp}", "sim.num_threads=1", "device=cpu", "sim.backend=mujoco", *overrides]
            if store:
                ov.append(f"motions.store={store}")
            points.append(measure(load_config(ov), num_envs=n, steps=steps, warmup=warmup))
    t_lo, t_hi = min(threads), max(threads)
    machine = None
    if backend == "mujoco" and t_hi > 1:
        cfg = load_config([f"+exp={exp}", *overrides])
        machine = machine_scale(
            load_model(cfg.robot.name, mjcf_path=cfg.robot.mjcf_path, timestep=cfg.sim.timestep)[0],
            threads=t_hi,
        )
    scale = {}
    for n in num_envs:
        by_t = {p["threads"]: p for p in points if p["num_envs"] == n and p["backend"] == backend}
        if t_hi != t_lo:
            scale[str(n)] = {
                "env": by_t[t_hi]["env_steps_per_s"] / by_t[t_lo]["env_steps_per_s"],
                "physics": by_t[t_hi]["physics_steps_per_s"] / by_t[t_lo]["physics_steps_per_s"],
            }
    return {
        "bench": "env",
        "exp": exp,
        "backend": backend,
        "device": device,
        "steps": steps,
        "points": points,
        f"scale_{t_hi}_over_{t_lo}": scale,
        "machine": machine,
        "min_env_over_physics": min(p["env_over_physics"] for p in points),
        "warp_cache": _warp_cache_dir() if backend in ("mujoco_warp", "isaaclab") else None,
        "note": "timings are noisy when other processes share the CPU cores",
    }


def _warp_cache_dir() -> str | None:
    try:
        import warp
    except ImportError:
        return None
    return str(warp.config.kernel_cache_dir)


@contextlib.contextmanager
def _stdout_to_stderr():
    """Everything written to stdout (Isaac Lab's timing prints, MuJoCo Warp's kernel printf) goes to
    stderr meanwhile, at the file-descriptor level, so `--json` prints nothing but the JSON."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _main(args) -> int:
    with _stdout_to_stderr() if args.json else contextlib.nullcontext():
        out = run(
            num_envs=tuple(args.num_envs),
            threads=tuple(args.threads),
            steps=args.steps,
            warmup=args.warmup,
            exp=args.exp,
            store=args.store,
            backend=args.backend,
            device=args.device,
            overrides=tuple(args.overrides),
        )
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for p in out["points"]:
            print(
                f"{p['backend']:>11s} N={p['num_envs']:5d} threads={p['threads']}  "
                f"physics {p['physics_steps_per_s']:9.0f}/s  "
                f"env {p['env_steps_per_s']:9.0f}/s  env/physics {p['env_over_physics']:.2f}  "
                f"(in-env physics {p['in_env_physics_ms_per_step']:.1f} ms + MDP {p['mdp_ms_per_step']:.1f} "
                "ms "
                f"per step: {p['env_over_in_env_physics']:.2f}; replay exact: {p['replay_exact']})"
            )
        for k, v in out.items():
            if k.startswith("scale_"):
                print(k, json.dumps(v))
        if out["machine"]:
            m = out["machine"]
            print(
                f"machine: {m['threads']} threads of bare mj_step (no Python between) give "
                f"{m['mj_step_scale']:.2f}x one thread (runs: "
                f"{', '.join(f'{r:.2f}' for r in m['mj_step_scale_all'])})"
            )
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("env", help="tracking env steps/s vs raw physics (N x threads)")
    p.add_argument("--num-envs", type=int, nargs="+", default=[64, 256])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--exp", default="demo")
    p.add_argument("--store", default=None, help="motion store (default: the config's, or the synthetic set)")
    p.add_argument(
        "--backend",
        default="mujoco",
        choices=["mujoco", "mujoco_warp", "isaaclab"],
        help="simulator backend (threads only matter for mujoco; isaaclab also measures mujoco beside it)",
    )
    p.add_argument("--device", default="cpu", help="torch device of the env (and of warp: cpu or cuda:N)")
    p.add_argument("--json", action="store_true")
    p.add_argument("overrides", nargs="*", help="config overrides (key=value)")
    p.set_defaults(func=_main)
