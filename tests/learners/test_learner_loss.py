"""The RLlib learner's loss equals the Ray-free core's on the same batch (no cluster needed)."""

from dataclasses import asdict

import pytest
import torch
from ray.rllib.core import DEFAULT_MODULE_ID

from sonic_ray.config import load_config
from sonic_ray.envs.factory import make_env
from sonic_ray.learners.rl_module import MODEL_KWARGS
from sonic_ray.models.actor_critic import ActorCritic
from sonic_ray.ppo.batch import minibatch, training_tensors
from sonic_ray.ppo.losses import compute_losses
from sonic_ray.ppo.rollout import RolloutCollector
from sonic_ray.train.build import algorithm_config

pytestmark = pytest.mark.slow


def test_learner_loss_equals_core_loss_on_a_real_rollout():
    torch.manual_seed(0)
    cfg = load_config(["+exp=smoke", "env.num_envs=6", "algo.num_steps_per_env=5"])
    algo_cfg = algorithm_config(cfg)
    learner = algo_cfg.build_learner()
    module = learner.module[DEFAULT_MODULE_ID]
    ac = ActorCritic(**algo_cfg.rl_module_spec.model_config[MODEL_KWARGS])
    ac.load_state_dict(module.ac.state_dict())

    env = make_env(cfg, num_envs=6, seed=1)
    batch = RolloutCollector(env, ac.act, 5).collect()
    ac.update_critic_normalizer(torch.as_tensor(batch.data["obs/critic"]).reshape(30, -1))
    module.ac.critic_normalizer.load_state_dict(ac.critic_normalizer.state_dict())
    data = training_tensors(batch.data, value_fn=ac.value_from_critic_obs, gamma=0.99, lam=0.95)
    mb = minibatch(data, torch.arange(30), normalize_advantage=True)

    coefs = dict(
        clip_param=cfg.algo.clip_param,
        value_loss_coef=cfg.algo.value_loss_coef,
        entropy_coef=cfg.algo.entropy_coef,
        use_clipped_value_loss=cfg.algo.use_clipped_value_loss,
        aux_coefs=asdict(cfg.aux_losses),
    )
    core_loss, core_stats = compute_losses(ac, mb, **coefs)

    fwd = module.forward_train(mb)
    loss = learner.compute_loss_for_module(module_id=DEFAULT_MODULE_ID, config=None, batch=mb, fwd_out=fwd)
    torch.testing.assert_close(loss, core_loss)
    assert float(core_stats["loss/aux_total"]) > 0
    for key in ("loss/policy", "loss/value", "loss/aux_g1_recon", "loss/aux_g1_smpl_align"):
        torch.testing.assert_close(learner._last_stats[key], core_stats[key], msg=key)


@pytest.mark.parametrize(
    "overrides, threads",
    [(["ray.learner_threads=0", "ray.cpus_per_learner=1"], 1), (["ray.learner_threads=2"], 2)],
)
def test_learner_torch_threads_follow_the_config(overrides, threads):
    before = torch.get_num_threads()
    try:
        cfg = load_config(["+exp=smoke", "env.num_envs=2", *overrides])
        torch.set_num_threads(3)  # neither expected count: the learner must set it
        algorithm_config(cfg).build_learner()
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
