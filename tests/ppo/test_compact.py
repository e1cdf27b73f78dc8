"""The compact rollout format: what the learner rebuilds equals what the env produced, bit for bit."""

import numpy as np
import pytest
import torch

from sonic_ray.config import load_config
from sonic_ray.envs.factory import make_env
from sonic_ray.models import keys as K
from sonic_ray.ppo.compact import is_compact, rebuild_history
from sonic_ray.ppo.compact_factory import make_compact_encoder, make_obs_rebuilder
from sonic_ray.ppo.rollout import RolloutCollector, concat_envs, split_envs

N, T, A = 6, 17, 29


# 0.3 s episodes: truncations every 15 steps besides the early terminations, so a rollout
# holds resets of both kinds and episodes that cross rollout boundaries.
_CFG_ARGS = ["+exp=smoke", f"env.num_envs={N}", f"algo.num_steps_per_env={T}", "env.episode_length_s=0.3"]


def _cfg(*extra):
    return load_config([*_CFG_ARGS, *extra])


class Recorder:
    """An act_fn that keeps a copy of every observation it is shown (what the full format ships)."""

    def __init__(self):
        self.seen: list[dict[str, torch.Tensor]] = []

    def __call__(self, obs):
        self.seen.append({k: v.clone() for k, v in obs.items()})
        actions = 0.3 * torch.randn(obs[K.POLICY].shape[0], A)
        return actions, torch.zeros(len(actions)), actions, torch.ones(A)


@pytest.fixture(scope="module")
def rollouts():
    cfg = _cfg()
    env = make_env(cfg, seed=3)
    rec = Recorder()
    collector = RolloutCollector(env, rec, T, compact=make_compact_encoder(cfg, env))
    torch.manual_seed(0)
    batches = [collector.collect() for _ in range(3)]
    seen = rec.seen + [{k: v.clone() for k, v in env.obs.items()}]  # + the final bootstrap observation
    env.close()
    return cfg, batches, seen


def test_rebuilt_observations_equal_the_envs_for_every_group_across_resets(rollouts):
    cfg, batches, seen = rollouts
    rebuild = make_obs_rebuilder(cfg)
    done = sum(int((b.data[K.TERMINATED] | b.data[K.TRUNCATED]).sum()) for b in batches)
    assert sum(int(b.data[K.TRUNCATED].sum()) for b in batches) > 0
    assert sum(int(b.data[K.TERMINATED].sum()) for b in batches) > 0
    assert done > N  # several episodes ended, inside rollouts and at their boundaries
    for i, b in enumerate(batches):
        assert is_compact(b.data)
        full = rebuild.expand(b.data)
        for group in K.FLOAT_GROUPS:
            want = np.stack([seen[i * T + t][group].numpy() for t in range(T)])
            got = full[K.OBS_PREFIX + group]
            if group == K.CRITIC:  # float16 offsets (ray.rollout_float16 default): within their rounding
                np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3, err_msg=group)
            else:
                np.testing.assert_array_equal(got, want, err_msg=group)
        np.testing.assert_allclose(
            full[K.LAST_CRITIC_OBS], seen[(i + 1) * T][K.CRITIC].numpy(), rtol=2e-3, atol=2e-3
        )
        enc = np.stack([seen[i * T + t][K.ENCODER_INDEX].numpy() for t in range(T)])
        np.testing.assert_array_equal(full[K.OBS_PREFIX + K.ENCODER_INDEX], enc)


def test_float32_critic_is_bit_identical_and_splits_rebuild_the_same():
    cfg = _cfg("ray.rollout_float16=[]")
    env = make_env(cfg, seed=4)
    rec = Recorder()
    collector = RolloutCollector(env, rec, T, compact=make_compact_encoder(cfg, env))
    torch.manual_seed(1)
    b = collector.collect()
    seen = rec.seen + [{k: v.clone() for k, v in env.obs.items()}]
    env.close()
    rebuild = make_obs_rebuilder(cfg)
    whole = rebuild.expand(b.data)
    want = np.stack([seen[t][K.CRITIC].numpy() for t in range(T)])
    np.testing.assert_array_equal(whole[K.OBS_PREFIX + K.CRITIC], want)
    np.testing.assert_array_equal(whole[K.LAST_CRITIC_OBS], seen[T][K.CRITIC].numpy())
    # Split across 2 learners, each part rebuilt on its own, joined: the same arrays.
    parts = [type(b)(rebuild.expand(p.data)) for p in split_envs(b, 2)]
    joined = concat_envs(parts).data
    for key in whole:
        np.testing.assert_array_equal(joined[key], whole[key], err_msg=key)


def test_full_format_records_the_observation_before_the_step():
    """The env's policy observation is a view of its history ring buffer every H-th step: a copy
    taken after env.step recorded the next step's history there."""
    cfg = _cfg("ray.rollout_format=full")
    env = make_env(cfg, seed=5)
    rec = Recorder()
    torch.manual_seed(2)
    b = RolloutCollector(env, rec, T, compact=make_compact_encoder(cfg, env)).collect()
    env.close()
    assert not is_compact(b.data)
    for group in (K.POLICY, K.CRITIC, K.TOKENIZER_G1):
        want = np.stack([rec.seen[t][group].numpy() for t in range(T)])
        np.testing.assert_array_equal(b.data[K.OBS_PREFIX + group], want, err_msg=group)


def test_rebuild_history_by_hand():
    # H=3, one env, frames 1..4 (k=1); history0 = [8, 9]; the env resets before step 2.
    frames = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(4, 1, 1)
    history0 = torch.tensor([8.0, 9.0]).reshape(2, 1, 1)
    starts = torch.tensor([False, False, True, False]).reshape(4, 1)
    got = rebuild_history(frames, history0, starts).reshape(4, 3)
    want = torch.tensor(
        [
            [8.0, 9.0, 1.0],  # step 0: the history the rollout started with
            [9.0, 1.0, 2.0],
            [3.0, 3.0, 3.0],  # a new episode: every slot its first frame
            [3.0, 3.0, 4.0],
        ]
    )
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_compact_ships_under_an_eighth_of_the_full_bytes():
    # at SONIC's 10-step proprioception history, which the compact format ships once per rollout (the
    # demo preset has none: 0.126 at its layout, tests/bench/test_rollout_bytes.py)
    hist = "env.observations.policy.history_length=10"
    cfg_c, cfg_f = _cfg(hist), _cfg(hist, "ray.rollout_format=full")
    sizes = {}
    for name, cfg in (("compact", cfg_c), ("full", cfg_f)):
        env = make_env(cfg, seed=6)
        torch.manual_seed(3)
        b = RolloutCollector(env, Recorder(), T, compact=make_compact_encoder(cfg, env)).collect()
        env.close()
        sizes[name] = b.nbytes() / (T * N)
    assert sizes["compact"] <= 0.125 * sizes["full"], sizes


def test_a_cached_reference_learner_rebuilds_the_same_as_the_full_table(rollouts):
    """motions.reference=cached on the learner (clips computed when a rollout names them, a small
    arena that must evict between rollouts) rebuilds exactly what the full table does."""
    cfg, batches, _ = rollouts
    full_table = make_obs_rebuilder(cfg)
    cached = make_obs_rebuilder(
        load_config([*_CFG_ARGS, "motions.reference=cached", "motions.cache_frames=64"])
    )
    assert type(cached.table).__name__ == "CachedReference"
    for b in batches:
        want, got = full_table.expand(b.data), cached.expand(b.data)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_a_window_runner_shows_the_tables_observations_and_its_learner_rebuilds_them(rollouts):
    """motions.reference=window on the runner: the same observations as the table runner's, and the
    learner (the cached clip arena: windows are per env) rebuilds them."""
    cfg, batches, seen = rollouts
    cfg_w = _cfg("motions.reference=window")
    env = make_env(cfg_w, seed=3)
    assert type(env.cmd.table).__name__ == "WindowReference"
    rec = Recorder()
    collector = RolloutCollector(env, rec, T, compact=make_compact_encoder(cfg_w, env))
    torch.manual_seed(0)
    got_batches = [collector.collect() for _ in range(2)]
    env.close()
    for a, b in zip(rec.seen, seen, strict=False):
        for key in a:
            assert torch.equal(a[key], b[key]), key
    rebuild = make_obs_rebuilder(cfg_w)
    assert type(rebuild.table).__name__ == "CachedReference"
    for got, want in zip(got_batches, batches, strict=False):
        g, w = rebuild.expand(got.data), make_obs_rebuilder(cfg).expand(want.data)
        for key in w:
            np.testing.assert_array_equal(g[key], w[key], err_msg=key)
