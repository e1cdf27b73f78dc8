"""Two training iterations of the RLlib learner on compact and on full rollouts give the same losses."""

import pytest
import torch
from ray.rllib.core import DEFAULT_MODULE_ID

from sonic_ray.config import load_config
from sonic_ray.envs.factory import make_env
from sonic_ray.learners.rl_module import MODEL_KWARGS
from sonic_ray.models.actor_critic import ActorCritic
from sonic_ray.ppo.compact import is_compact
from sonic_ray.ppo.compact_factory import make_compact_encoder
from sonic_ray.ppo.rollout import RolloutCollector

pytestmark = pytest.mark.slow

N, T = 8, 12


def _train(fmt: str, float16: str, init: dict | None):
    """2 iterations (sample with the learner's current weights, update) -> (losses per iteration,
    initial weights)."""
    cfg = load_config(
        [
            "+exp=smoke",
            f"env.num_envs={N}",
            f"algo.num_steps_per_env={T}",
            "env.episode_length_s=0.2",
            "algo.num_mini_batches=2",
            f"ray.rollout_format={fmt}",
            f"ray.rollout_float16={float16}",
        ]
    )
    from sonic_ray.train.build import algorithm_config

    algo_cfg = algorithm_config(cfg)
    torch.manual_seed(0)
    learner = algo_cfg.build_learner()
    module = learner.module[DEFAULT_MODULE_ID]
    if init is not None:
        module.ac.load_state_dict(init)
    init = {k: v.clone() for k, v in module.ac.state_dict().items()}
    env = make_env(cfg, num_envs=N, seed=1)
    ac = ActorCritic(**algo_cfg.rl_module_spec.model_config[MODEL_KWARGS])
    collector = RolloutCollector(env, ac.act, T, compact=make_compact_encoder(cfg, env))
    losses = []
    for it in range(2):
        ac.load_state_dict(module.ac.state_dict())
        torch.manual_seed(10 + it)
        fb = collector.collect()
        assert is_compact(fb.data) == (fmt == "compact")
        torch.manual_seed(20 + it)  # minibatch permutations
        stats = learner.update(batches=[fb])
        losses.append({k: float(v) for k, v in stats.items() if k.startswith("loss/")})
        assert stats["learner/received_bytes"] == fb.nbytes()
        assert stats["learner/cross_node_bytes"] == 0
    env.close()
    return losses, init


def test_compact_float32_rollouts_give_the_full_formats_losses_exactly():
    full, init = _train("full", "[]", None)
    compact, _ = _train("compact", "[]", init)
    assert compact == full


def test_compact_float16_critic_gives_the_full_formats_losses_within_tolerance():
    full, init = _train("full", "[]", None)
    compact, _ = _train("compact", "[critic]", init)
    for f, c in zip(full, compact):
        assert f.keys() == c.keys()
        for k in f:
            assert c[k] == pytest.approx(f[k], rel=2e-3, abs=1e-5), k
