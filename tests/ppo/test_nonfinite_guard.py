"""A non-finite loss in one update is skipped: no optimiser step (weights and Adam moments as they
were), `loss/skipped_nonfinite` counts the skipped steps, the lr stays finite, the next update trains.
Both learners (in-process and RLlib's, built without Ray) through the fault-injection variable."""

from __future__ import annotations

import math

import pytest
import torch

from sonic_ray.ppo.batch import training_tensors
from sonic_ray.ppo.update import NAN_LOSS_ENV, SKIPPED_NONFINITE, PPOUpdater, adapt_lr
from tests.models.test_actor_critic import small_ac
from tests.ppo.test_update import fake_rollout

EPOCHS, MINIBATCHES = 2, 3


def _params(module) -> dict[str, torch.Tensor]:
    """The trained weights (the observation normalisers' running stats follow the data, not the loss)."""
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _changed(before, module) -> list[str]:
    return [k for k, v in module.named_parameters() if not torch.equal(v, before[k])]


def test_a_nan_kl_leaves_the_lr_as_it_was():
    assert adapt_lr(1e-4, math.nan, desired_kl=0.01, lr_min=1e-5, lr_max=1e-3) == 1e-4


def test_the_inprocess_learner_skips_the_poisoned_update(monkeypatch):
    monkeypatch.setenv(NAN_LOSS_ENV, "2")
    torch.manual_seed(0)
    ac = small_ac()
    up = PPOUpdater(
        ac,
        actor_lr=1e-3,
        critic_lr=1e-3,
        lr_min=1e-6,
        lr_max=1e-2,
        desired_kl=0.01,
        schedule="adaptive",
        num_learning_epochs=EPOCHS,
        num_mini_batches=MINIBATCHES,
        clip_param=0.2,
        value_loss_coef=1.0,
        entropy_coef=0.0,
        use_clipped_value_loss=True,
        max_grad_norm=1.0,
        normalize_advantage=True,
        aux_coefs={"g1_recon": 0.01},
    )
    data = training_tensors(fake_rollout().data, value_fn=ac.value_from_critic_obs, gamma=0.99, lam=0.95)
    first = up.update(data)
    assert first[SKIPPED_NONFINITE] == 0
    before, moments = _params(ac), str(up.actor_opt.state_dict()["state"][0]["exp_avg"].sum())

    poisoned = up.update(data)
    assert poisoned[SKIPPED_NONFINITE] == EPOCHS * MINIBATCHES
    assert _changed(before, ac) == []
    assert str(up.actor_opt.state_dict()["state"][0]["exp_avg"].sum()) == moments
    assert all(math.isfinite(v) for v in poisoned.values()) and math.isfinite(up.actor_lr)

    after = up.update(data)
    assert after[SKIPPED_NONFINITE] == 0 and math.isfinite(after["loss/total"])
    assert _changed(before, ac)


@pytest.mark.slow
def test_the_rllib_learner_skips_the_poisoned_update(monkeypatch):
    from ray.rllib.core import DEFAULT_MODULE_ID

    from sonic_ray.config import load_config
    from sonic_ray.envs.factory import make_env
    from sonic_ray.ppo.rollout import RolloutCollector
    from sonic_ray.train.build import algorithm_config

    monkeypatch.setenv(NAN_LOSS_ENV, "2")
    torch.manual_seed(0)
    cfg = load_config(
        [
            "+exp=smoke",
            "env.num_envs=8",
            "algo.num_steps_per_env=6",
            f"algo.num_learning_epochs={EPOCHS}",
            f"algo.num_mini_batches={MINIBATCHES}",
        ]
    )
    learner = algorithm_config(cfg).build_learner()
    module = learner.module[DEFAULT_MODULE_ID]
    env = make_env(cfg, num_envs=8, seed=1)
    fb = RolloutCollector(env, module.ac.act, 6).collect()
    env.close()
    assert learner.update_from_flat(fb)[SKIPPED_NONFINITE] == 0
    before = _params(module.ac)
    lr = learner.actor_lr

    stats = learner.update_from_flat(fb)
    assert stats[SKIPPED_NONFINITE] == EPOCHS * MINIBATCHES
    assert _changed(before, module.ac) == []
    assert math.isfinite(learner.actor_lr) and lr > 0
    assert learner.update_from_flat(fb)[SKIPPED_NONFINITE] == 0
    assert _changed(before, module.ac)
