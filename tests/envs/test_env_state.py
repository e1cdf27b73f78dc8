"""A TrackingEnv snapshot restored into a fresh env (another seed) steps exactly like the original."""

import io

import pytest
import torch
from env_builders import tiny_store

from sonic_ray.config import load_config
from sonic_ray.envs.factory import make_env


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return str(tiny_store(tmp_path_factory.mktemp("motions") / "tiny.parquet"))


def _run(env, steps: int, seed: int) -> list:
    """Actions from their own generator; record everything the env hands out."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        actions = 0.5 * torch.randn(env.num_envs, env.action_dim, generator=g)
        obs, reward, terminated, truncated, info = env.step(actions)
        out.append(
            (
                {k: v.clone() for k, v in obs.items()},
                reward.clone(),
                terminated.clone(),
                truncated.clone(),
                info["done_ids"].clone(),
            )
        )
    out.append(env.metrics())
    return out


@pytest.mark.slow
@pytest.mark.parametrize("sampler,threads", [("adaptive", 2), ("uniform", 1)])
def test_snapshot_restores_bit_identical_steps(store, sampler, threads):
    # Every randomisation on (per-env models, default-joint offsets) and pushes every few steps;
    # two stepping threads: each env's MjData is stepped by one thread, whichever runs first.
    cfg = load_config(
        [
            "+exp=demo",
            f"motions.store={store}",
            "device=cpu",
            "env.events.level=4",
            f"sim.num_threads={threads}",
            "env.events.terms.push_robot.interval_range_s=[0.04,0.1]",
            "env.episode_length_s=0.3",
            f"env.commands.motion.sampler={sampler}",
            "env.commands.motion.pre_failure_window_s=0.2",
        ]
    )
    env = make_env(cfg, num_envs=5, seed=3)
    env.cmd.sampler.set_rates(torch.linspace(0.0, 1.0, env.cmd.sampler.num_bins).numpy())
    _run(env, 9, seed=0)
    buf = io.BytesIO()
    torch.save(env.state_dict(), buf)  # what a checkpoint does with it
    want = _run(env, 25, seed=1)

    fresh = make_env(cfg, num_envs=5, seed=77)  # different RNG, fresh episodes: all overwritten
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf, weights_only=False))
    got = _run(fresh, 25, seed=1)
    assert any(len(step[4]) for step in want[:-1]), "no episode ended: the test would not cover resets"
    for t, (a, b) in enumerate(zip(want[:-1], got[:-1])):
        for k in a[0]:
            assert torch.equal(a[0][k], b[0][k]), f"step {t} obs {k}"
        for i, name in enumerate(("reward", "terminated", "truncated", "done_ids"), start=1):
            assert torch.equal(a[i], b[i]), f"step {t} {name}"
    assert want[-1] == got[-1]  # episode metrics and per-term sums
    assert torch.equal(env.cmd.sampler.bin_visits, fresh.cmd.sampler.bin_visits)


def test_snapshot_of_another_size_is_refused(store):
    cfg = load_config(["+exp=demo", f"motions.store={store}", "device=cpu"])
    state = make_env(cfg, num_envs=2).state_dict()
    with pytest.raises(ValueError, match="num_envs changed"):
        make_env(cfg, num_envs=3).load_state_dict(state)


def test_snapshot_with_other_terms_is_refused_by_name(store):
    cfg = load_config(["+exp=demo", f"motions.store={store}", "device=cpu"])
    state = make_env(cfg, num_envs=2).state_dict()
    more = load_config(
        [
            "+exp=demo",
            f"motions.store={store}",
            "device=cpu",
            "+env.terminations.foot_pos={params: {threshold: 0.2}}",
        ]
    )
    with pytest.raises(ValueError, match=r"termination terms differ .* added \['foot_pos'\], removed \[\]"):
        make_env(more, num_envs=2).load_state_dict(state)
    fewer = load_config(["+exp=demo", f"motions.store={store}", "device=cpu", "~env.rewards.action_rate_l2"])
    with pytest.raises(ValueError, match=r"reward terms differ .* removed \['action_rate_l2'\]"):
        make_env(fewer, num_envs=2).load_state_dict(state)
