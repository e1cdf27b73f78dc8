"""The in-process learner and the RLlib learner run the same update: identical parameters after it."""

from dataclasses import asdict

import pytest
import torch
from ray.rllib.core import DEFAULT_MODULE_ID

from sonic_ray.config import load_config
from sonic_ray.envs.factory import make_env
from sonic_ray.learners.rl_module import MODEL_KWARGS
from sonic_ray.models import keys as K
from sonic_ray.models.actor_critic import ActorCritic
from sonic_ray.ppo.batch import obs_groups, training_tensors
from sonic_ray.ppo.rollout import RolloutCollector
from sonic_ray.ppo.update import PPOUpdater

pytestmark = pytest.mark.slow

UPDATER_KEYS = (
    "actor_lr",
    "critic_lr",
    "lr_min",
    "lr_max",
    "desired_kl",
    "schedule",
    "num_learning_epochs",
    "num_mini_batches",
    "clip_param",
    "value_loss_coef",
    "entropy_coef",
    "use_clipped_value_loss",
    "max_grad_norm",
    "normalize_advantage",
)


@pytest.mark.parametrize("extra", [[], ["actor_critic.obs_normalization=true"]])
def test_inprocess_and_rllib_learners_end_an_update_with_identical_parameters(extra):
    torch.manual_seed(0)
    # A large initial lr and a tight target KL make the adaptive schedule move within the update,
    # and a small grad norm makes clipping bind: both paths must agree on all three.
    cfg = load_config(
        [
            "+exp=smoke",
            "env.num_envs=8",
            "algo.num_steps_per_env=6",
            "algo.actor_lr=1e-3",
            "algo.lr_max=1e-2",
            "algo.desired_kl=0.001",
            "algo.num_learning_epochs=2",
            "algo.num_mini_batches=3",
            "algo.max_grad_norm=0.05",
            *extra,
        ]
    )
    from sonic_ray.train.build import algorithm_config

    algo_cfg = algorithm_config(cfg)
    learner = algo_cfg.build_learner()
    module = learner.module[DEFAULT_MODULE_ID]
    ac = ActorCritic(**algo_cfg.rl_module_spec.model_config[MODEL_KWARGS])
    ac.load_state_dict(module.ac.state_dict())
    ac.log_std.data.fill_(0.5**0.5)  # outside [min_std, max_std] after exp: projection must bind
    module.ac.log_std.data.copy_(ac.log_std.data)
    before = {k: v.clone() for k, v in ac.state_dict().items()}

    env = make_env(cfg, num_envs=8, seed=1)
    fb = RolloutCollector(env, ac.act, 6).collect()
    env.close()

    algo = asdict(cfg.algo)
    updater = PPOUpdater(ac, aux_coefs=asdict(cfg.aux_losses), **{k: algo[k] for k in UPDATER_KEYS})
    critic_obs = torch.as_tensor(fb.data[K.OBS_PREFIX + K.CRITIC])
    ac.update_critic_normalizer(critic_obs.reshape(-1, critic_obs.shape[-1]))
    data = training_tensors(
        fb.data, value_fn=ac.value_from_critic_obs, gamma=cfg.algo.gamma, lam=cfg.algo.lam
    )
    torch.manual_seed(7)  # the minibatch permutations come from the global torch RNG on both paths
    core_stats = updater.update(data)
    ac.update_actor_normalizers(obs_groups(data))

    torch.manual_seed(7)
    rllib_stats = learner.update_from_flat(fb)

    assert core_stats["ppo/actor_lr"] != cfg.algo.actor_lr  # the schedule moved
    assert rllib_stats["ppo/actor_lr"] == pytest.approx(core_stats["ppo/actor_lr"], rel=1e-12)
    assert float(ac.std.detach().max()) <= cfg.actor_critic.max_std * (1 + 1e-6)
    mine, theirs = ac.state_dict(), module.ac.state_dict()
    assert mine.keys() == theirs.keys()
    for key in mine:
        torch.testing.assert_close(theirs[key], mine[key], rtol=0, atol=0, msg=key)
        # (not the g1_kin decoder's first layer: a fresh encoder's tokens are all the zero code, so
        # that layer's weights get no gradient until the latents cross a rounding boundary)
        if key.startswith(("token.encoders.", "token.dyn_decoder.", "critic.")):
            assert not torch.equal(mine[key], before[key]), f"{key} did not move"
