"""The env over a sharded store: the driver's probe reads one clip; a cached-reference env steps."""

import torch
from env_builders import tiny_store

from sonic_ray.config import load_config
from sonic_ray.envs.factory import make_env
from sonic_ray.motion import sharded
from sonic_ray.motion.store import migrate
from sonic_ray.train.build import probe_env


def _cfg(store, *extra):
    return load_config(["+exp=demo", f"motions.store={store}", "device=cpu", "sim.backend=mujoco", *extra])


def test_probe_env_reads_the_manifest_and_one_clip(tmp_path, monkeypatch):
    migrate(tiny_store(tmp_path / "tiny.parquet", clips=6), tmp_path / "store")
    decoded = []
    real = sharded._table_to_clips

    def counting(table, j):
        decoded.append(table.num_rows)
        return real(table, j)

    monkeypatch.setattr(sharded, "_table_to_clips", counting)
    cfg = _cfg(tmp_path / "store")
    dims, action_dim = probe_env(cfg)
    assert decoded == [1] and action_dim == 29
    decoded.clear()
    env = make_env(cfg, num_envs=2)
    assert sum(decoded) == 6 and env.obs_dims() == dims


def test_cached_reference_env_steps_like_the_table_env(tmp_path):
    store = tiny_store(tmp_path / "tiny.parquet", clips=4)
    obs = []
    for mode in ("table", "cached"):
        env = make_env(
            _cfg(
                store,
                f"motions.reference={mode}",
                "motions.cache_frames=100",
                "env.observations.policy.enable_corruption=false",
            ),
            num_envs=3,
            seed=1,
        )
        o = env.reset()
        steps = [o]
        for _ in range(5):
            steps.append(env.step(torch.zeros(3, env.action_dim))[0])
        obs.append(steps)
    for a, b in zip(*obs, strict=True):
        for k in a:
            assert torch.equal(a[k], b[k]), k
