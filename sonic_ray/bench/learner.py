"""`sonic-ray bench learner`: PPO update throughput, ours against rsl_rl's PPO, in one run.

For each size ("demo", "sonic_release") both learners update on the same T x N rollout through
5 epochs x 4 minibatches (the preset's `algo`); throughput is samples/s = epochs * rows / seconds
of one `update`, the median of 3 after one warm-up update. The learners take turns (one timed
update of each per round), so a change of load on a shared machine hits all of them alike.

- Observation sizes are the real ones: the demo config's env is probed once (MuJoCo CPU). The
  release size keeps those observations and takes its network sizes from `+exp=sonic_release`.
- Ours: `ActorCritic` from `actor_critic_kwargs(cfg, ...)` and `PPOUpdater` on the flat batch that
  `training_tensors` makes from a random `FlatBatch`-shaped rollout (3 encoders on every row, FSQ,
  g1_dyn, g1_kin, the smpl->g1 re-encoding, critic, all aux losses, two Adam optimisers).
- rsl_rl 5.5.1: its stock PPO (one Adam, adaptive KL, clipped value loss) with an actor MLP of our
  g1_dyn sizes over [policy, tokenizer_g1] and a critic MLP of our critic sizes, filled with the same
  observations and rewards through its own `act`/`process_env_step`/`compute_returns`.

Ours does more work per row (the encoders, the kin decoder twice, the re-encoding), so beside the
raw `over_rsl_rl` the JSON gives forward multiply-accumulates per row of both (`macs_per_row`) and
`over_rsl_rl_per_mac` (throughput in MACs/s, ours over theirs): the raw ratio is the price of the
token module and aux losses, the per-MAC ratio how efficiently each runs its own network.

- rllib: the `SonicLearner` that training runs (RLlib's `PPOTorchLearner`, built here in-process by
  `build_learner()` as the local learner of `num_learners=0`, no Ray cluster), from the same initial
  weights, updating on the same prepared tensors through its update loop: every minibatch goes
  through RLlib's `_update` (forward_train, compute_loss_for_module, gradients, clipping, apply).
  `rllib_over_ours` and `rllib_over_rsl_rl` are its samples/s over the other two: the first is the
  cost of RLlib's learner machinery around the same math. It runs with the bench's torch threads
  (the learner sets its own at build; they are set back). CPU only.
torch runs 1 thread by default: on a shared 2-core box more threads swing timings by 10x.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from sonic_ray.config import load_config
from sonic_ray.models import keys as K
from sonic_ray.models.actor_critic import ActorCritic
from sonic_ray.models.factory import actor_critic_kwargs
from sonic_ray.ppo.batch import training_tensors
from sonic_ray.ppo.rollout import FlatBatch
from sonic_ray.ppo.update import PPOUpdater
from sonic_ray.train.build import observation_space, probe_env

SIZES = {"demo": "demo", "sonic_release": "sonic_release"}  # size -> exp preset holding its network sizes
DEFAULT_ENVS = {"demo": 128, "sonic_release": 16}


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def _timed(fns: dict[str, Callable[[], object]], device, repeats: int) -> dict[str, list[float]]:
    """One warm-up call of each, then `repeats` rounds timing each once in turn: a change of load on a
    shared machine then falls on every side alike, and the ratios hold better than the figures."""
    for fn in fns.values():
        fn()
    out = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            out[name].append(time.perf_counter() - t)
    return out


def probe_dims(overrides=()) -> tuple[dict[str, int], int]:
    """Observation dims and action dim of the demo env (MuJoCo CPU, one env)."""
    return probe_env(load_config(["+exp=demo", "sim.backend=mujoco", "device=cpu", *overrides]))


def macs_per_row(model: nn.Module, forward) -> int:
    """Multiply-accumulates of the Linear layers in one `forward()` call, divided by its rows."""
    total, rows = 0, []

    def hook(mod, inp, out):
        nonlocal total
        total += inp[0].shape[0] * mod.in_features * mod.out_features
        rows.append(inp[0].shape[0])

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            n = forward()
    finally:
        for h in handles:
            h.remove()
    return int(total // n)


def make_rollout(ac, obs_dims: dict[str, int], *, num_steps: int, num_envs: int, seed: int) -> FlatBatch:
    """A T x N rollout shaped like `RolloutCollector`'s: random observations, actions from `ac`, a few
    terminations and truncations (with their final critic observations)."""
    T, N = num_steps, num_envs
    g = np.random.default_rng(seed)
    data = {}
    for name, dim in obs_dims.items():
        if name == K.ENCODER_INDEX:
            data[K.OBS_PREFIX + name] = g.integers(0, len(K.ENCODER_NAMES), (T, N)).astype(np.int8)
        else:
            data[K.OBS_PREFIX + name] = g.standard_normal((T, N, dim), dtype=np.float32)
    obs = {k[len(K.OBS_PREFIX) :]: torch.as_tensor(v.reshape(T * N, *v.shape[2:])) for k, v in data.items()}
    obs[K.ENCODER_INDEX] = obs[K.ENCODER_INDEX].long()
    with torch.no_grad():
        actions, logp, mean, std = ac.act(obs)
    A = actions.shape[-1]
    data.update(
        {
            K.ACTIONS: actions.numpy().reshape(T, N, A),
            K.LOGP: logp.numpy().reshape(T, N),
            K.ACTION_MEAN: mean.numpy().reshape(T, N, A),
            K.ACTION_STD: std.numpy().reshape(A),
            K.REWARDS: g.standard_normal((T, N), dtype=np.float32) * 0.1,
            K.TERMINATED: g.random((T, N)) < 0.01,
            K.LAST_CRITIC_OBS: g.standard_normal((N, obs_dims[K.CRITIC]), dtype=np.float32),
        }
    )
    truncated = (g.random((T, N)) < 0.01) & ~data[K.TERMINATED]
    data[K.TRUNCATED] = truncated
    data[K.FINAL_INDEX] = np.flatnonzero(truncated).astype(np.int64)
    data[K.FINAL_CRITIC_OBS] = g.standard_normal(
        (len(data[K.FINAL_INDEX]), obs_dims[K.CRITIC]), dtype=np.float32
    )
    return FlatBatch(data)


def prepare(cfg, batch: FlatBatch, ac, *, device) -> dict[str, torch.Tensor]:
    """What a learner does before its epochs: critic normaliser update, values, GAE -> training tensors."""
    crit = torch.as_tensor(batch.data[K.OBS_PREFIX + K.CRITIC], device=device)
    ac.update_critic_normalizer(crit.reshape(-1, crit.shape[-1]))
    return training_tensors(
        batch.data, value_fn=ac.value_from_critic_obs, gamma=cfg.algo.gamma, lam=cfg.algo.lam, device=device
    )


def setup_ours(cfg, data: dict[str, torch.Tensor], ac) -> tuple[Callable, dict]:
    """(one update, {params, macs_per_row}) of the in-process PPOUpdater."""
    updater = PPOUpdater.from_config(ac, cfg)
    gen = torch.Generator().manual_seed(0)
    rows = data[K.ACTIONS].shape[0]
    n = min(rows, 256)
    obs = {k[len(K.OBS_PREFIX) :]: v[:n] for k, v in data.items() if k.startswith(K.OBS_PREFIX)}

    def fwd():
        ac.evaluate(obs, data[K.ACTIONS][:n])
        return n

    info = {"params": sum(p.numel() for p in ac.parameters()), "macs_per_row": macs_per_row(ac, fwd)}
    return (lambda: updater.update(data, generator=gen)), info


def setup_rllib(
    cfg, kw: dict, obs_dims: dict[str, int], data: dict[str, torch.Tensor], init_state: dict, *, device
) -> tuple[Callable, dict]:
    """(one update, {}) of the RLlib `SonicLearner` on the same tensors from the same weights (see the
    module docstring). Raises _Unavailable off the CPU."""
    # lazy: ray and RLlib load only when this bench runs (`sonic-ray --help` imports this module)
    from ray.rllib.core import DEFAULT_MODULE_ID

    from sonic_ray.algorithm import to_algorithm_config

    if torch.device(device).type != "cpu":
        raise _Unavailable("the rllib side runs on cpu only in this bench")
    threads = torch.get_num_threads()
    act_space = gym.spaces.Box(-np.inf, np.inf, (kw["action_dim"],), np.float32)
    cfg = dataclasses.replace(cfg, ray=dataclasses.replace(cfg.ray, num_learners=0, gpus_per_learner=0))
    learner = to_algorithm_config(
        cfg, observation_space=observation_space(obs_dims), action_space=act_space, model_config=kw
    ).build_learner()
    torch.set_num_threads(threads)  # the learner set ray.learner_threads (or its CPUs): equal threads here
    learner.module[DEFAULT_MODULE_ID].ac.load_state_dict(init_state)
    # the learner's update loop with its own step (RLlib's _update), on the tensors ours updates on
    return (lambda: learner.loop.run(data, learner._step)), {}


def setup_rsl_rl(cfg, kw: dict, batch: FlatBatch, *, device) -> tuple[Callable, dict]:
    """(one update, {params, macs_per_row}) of rsl_rl's PPO filled with the same rollout."""
    from rsl_rl.algorithms import PPO
    from rsl_rl.models import MLPModel
    from rsl_rl.storage import RolloutStorage
    from tensordict import TensorDict

    T, N = batch.num_steps, batch.num_envs
    d = batch.data
    groups = {"actor": [K.POLICY, K.TOKENIZER_G1], "critic": [K.CRITIC]}

    def obs_at(t):
        src = {k: d[K.OBS_PREFIX + k][t] if t < T else None for k in (K.POLICY, K.TOKENIZER_G1, K.CRITIC)}
        if t == T:  # bootstrap observation: reuse the last step's actor obs, the shipped critic obs
            src = {
                K.POLICY: d[K.OBS_PREFIX + K.POLICY][-1],
                K.TOKENIZER_G1: d[K.OBS_PREFIX + K.TOKENIZER_G1][-1],
                K.CRITIC: d[K.LAST_CRITIC_OBS],
            }
        return TensorDict(
            {k: torch.as_tensor(v, device=device) for k, v in src.items()}, batch_size=[N], device=device
        )

    obs = obs_at(0)
    dist = {
        "class_name": "rsl_rl.modules.distribution:GaussianDistribution",
        "init_std": kw["init_noise_std"],
        "std_type": "log",
    }
    act = kw["activation"] if kw["activation"] != "silu" else "swish"
    actor = MLPModel(
        obs, groups, "actor", kw["action_dim"], kw["dyn_decoder_hidden"], act, distribution_cfg=dist
    )
    critic = MLPModel(obs, groups, "critic", 1, kw["critic_hidden"], act, obs_normalization=True)
    storage = RolloutStorage("rl", N, T, obs, [kw["action_dim"]], device)
    a = cfg.algo
    alg = PPO(
        actor,
        critic,
        storage,
        num_learning_epochs=a.num_learning_epochs,
        num_mini_batches=a.num_mini_batches,
        clip_param=a.clip_param,
        gamma=a.gamma,
        lam=a.lam,
        value_loss_coef=a.value_loss_coef,
        entropy_coef=a.entropy_coef,
        learning_rate=a.actor_lr,
        max_grad_norm=a.max_grad_norm,
        use_clipped_value_loss=a.use_clipped_value_loss,
        schedule=a.schedule,
        desired_kl=a.desired_kl,
        device=device,
    )
    with torch.no_grad():
        for t in range(T):
            alg.act(obs)
            obs = obs_at(t + 1)
            dones = torch.as_tensor(d[K.TERMINATED][t] | d[K.TRUNCATED][t], device=device).long()
            alg.process_env_step(obs, torch.as_tensor(d[K.REWARDS][t], device=device), dones, {})
        alg.compute_returns(obs)
    flat = obs_at(0)

    def fwd():
        actor(flat, stochastic_output=True)
        critic(flat)
        return N

    params = sum(p.numel() for p in actor.parameters()) + sum(p.numel() for p in critic.parameters())
    # alg.update repeats on the same data: storage.clear() keeps it
    return alg.update, {"params": params, "macs_per_row": macs_per_row(nn.ModuleList([actor, critic]), fwd)}


class _Unavailable(RuntimeError):
    """A side that cannot run here (its message goes into the JSON)."""


def compare(cfg, kw: dict, obs_dims: dict[str, int], batch: FlatBatch, ac, *, device, repeats: int) -> dict:
    """The three learners on one batch from the same weights -> {rows, ours, rllib, rsl_rl, ratios}."""
    data = prepare(cfg, batch, ac, device=device)
    init_state = copy.deepcopy(ac.state_dict())
    sides, errors = {"ours": setup_ours(cfg, data, ac)}, {}
    try:
        sides["rllib"] = setup_rllib(cfg, kw, obs_dims, data, init_state, device=device)
    except _Unavailable as e:
        errors["rllib"] = {"error": str(e)}
    try:
        sides["rsl_rl"] = setup_rsl_rl(cfg, kw, batch, device=device)
    except ImportError as e:  # rsl-rl-lib is a dev extra
        errors["rsl_rl"] = {"error": f"rsl_rl unavailable: {e}"}
    times = _timed({name: fn for name, (fn, _) in sides.items()}, device, repeats)
    rows = batch.num_steps * batch.num_envs
    timed = {}
    for name, (_, info) in sides.items():
        sec = statistics.median(times[name])
        timed[name] = {
            "seconds": sec,
            "seconds_all": times[name],
            "samples_per_s": cfg.algo.num_learning_epochs * rows / sec,
            **info,
        }
    ours, rllib, rsl = timed["ours"], {**errors, **timed}.get("rllib"), {**errors, **timed}.get("rsl_rl")
    entry = {"rows": rows, "ours": ours, "rllib": rllib, "rsl_rl": rsl}
    if "samples_per_s" in rsl:
        entry["over_rsl_rl"] = ours["samples_per_s"] / rsl["samples_per_s"]
        entry["over_rsl_rl_per_mac"] = entry["over_rsl_rl"] * ours["macs_per_row"] / rsl["macs_per_row"]
    if "samples_per_s" in rllib:
        entry["rllib_over_ours"] = rllib["samples_per_s"] / ours["samples_per_s"]
        if "samples_per_s" in rsl:
            entry["rllib_over_rsl_rl"] = rllib["samples_per_s"] / rsl["samples_per_s"]
    return entry


def run(
    *,
    sizes=("demo", "sonic_release"),
    num_steps: int = 24,
    num_envs: dict | None = None,
    device: str = "cpu",
    threads: int = 1,
    repeats: int = 3,
    seed: int = 0,
    **_,
) -> dict:
    """All three learners at each size -> {size: {ours, rllib, rsl_rl, over_rsl_rl, over_rsl_rl_per_mac,
    rllib_over_ours, rllib_over_rsl_rl, rows}, meta}."""
    if threads:
        torch.set_num_threads(threads)
    envs = dict(DEFAULT_ENVS, **(num_envs or {}))
    obs_dims, action_dim = probe_dims()
    result = {
        "bench": "learner",
        "meta": {
            "device": str(device),
            "torch_threads": torch.get_num_threads(),
            "num_steps": num_steps,
            "num_envs": {s: envs[s] for s in sizes},
            "obs_dims": obs_dims,
            "action_dim": action_dim,
            "repeats": repeats,
            "timing": "median of repeats after 1 warm-up update; the learners take turns in each round",
            "note": "timings are noisy when other processes share the CPU cores",
        },
    }
    for size in sizes:
        cfg = load_config([f"+exp={SIZES[size]}", "sim.backend=mujoco", "device=cpu"])
        result["meta"].setdefault("epochs", cfg.algo.num_learning_epochs)
        result["meta"].setdefault("minibatches", cfg.algo.num_mini_batches)
        kw = actor_critic_kwargs(cfg, obs_dims=obs_dims, action_dim=action_dim)
        torch.manual_seed(seed)
        ac = ActorCritic(**kw).to(device)
        batch = make_rollout(ac, obs_dims, num_steps=num_steps, num_envs=envs[size], seed=seed)
        result[size] = {
            "num_envs": envs[size],
            **compare(cfg, kw, obs_dims, batch, ac, device=device, repeats=repeats),
        }
    return result


def _main(args) -> int:
    num_envs = {k: v for k, v in (("demo", args.demo_envs), ("sonic_release", args.release_envs)) if v}
    out = run(
        sizes=tuple(args.sizes),
        num_steps=args.num_steps,
        num_envs=num_envs,
        device=args.device,
        threads=args.threads,
        repeats=args.repeats,
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    for size in args.sizes:
        e = out[size]
        rsl = e["rsl_rl"].get("samples_per_s", float("nan"))
        rl = e["rllib"].get("samples_per_s", float("nan"))
        print(
            f"{size:14s} rows={e['rows']:6d}  ours {e['ours']['samples_per_s']:9.0f}/s  rllib {rl:9.0f}/s  "
            f"rsl_rl {rsl:9.0f}/s  ours/rsl_rl {e.get('over_rsl_rl', float('nan')):.2f}  "
            f"per-MAC {e.get('over_rsl_rl_per_mac', float('nan')):.2f}  "
            f"rllib/ours {e.get('rllib_over_ours', float('nan')):.2f}"
        )
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "learner", help="PPO update samples/s: ours, the RLlib learner, rsl_rl (demo, release)"
    )
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--num-steps", type=int, default=24, help="T steps per env in the batch")
    p.add_argument(
        "--demo-envs", type=int, default=0, help=f"N envs at demo size (default {DEFAULT_ENVS['demo']})"
    )
    p.add_argument(
        "--release-envs",
        type=int,
        default=0,
        help=f"N envs at sonic_release size (default {DEFAULT_ENVS['sonic_release']})",
    )
    p.add_argument("--repeats", type=int, default=3, help="timed updates per learner (median reported)")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: steadier on shared CPUs; 0 keeps torch's default)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_main)
