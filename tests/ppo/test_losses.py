import math

import pytest
import torch

from sonic_ray.ppo.losses import gaussian_kl, surrogate_loss, value_loss
from sonic_ray.ppo.update import adapt_lr


def test_surrogate_clipping_by_hand():
    old = torch.zeros(3)
    logp = torch.log(torch.tensor([1.5, 0.5, 1.1]))  # ratios 1.5, 0.5, 1.1
    adv = torch.tensor([1.0, 1.0, -2.0])
    loss, stats = surrogate_loss(logp, old, adv, clip_param=0.2)
    # row0: max(-1.5, -1.2) = -1.2 ; row1: max(-0.5, -0.8) = -0.5 ; row2: max(2.2, 2.2) = 2.2
    assert float(loss) == pytest.approx((-1.2 - 0.5 + 2.2) / 3)
    assert float(stats["ppo/clip_frac"]) == pytest.approx(2 / 3)


def test_clipped_value_loss_by_hand():
    v, old, ret = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.1]), torch.tensor([1.5, 1.0])
    # row0: unclipped (2-1.5)^2 = .25 ; clipped v = 1.2 -> (1.2-1.5)^2 = .09 ; max .25
    # row1: unclipped 1.0 ; clipped v = 0.0 (within .2 of .1) -> 1.0 ; max 1.0
    assert float(value_loss(v, old, ret, clip_param=0.2, clipped=True)) == pytest.approx((0.25 + 1.0) / 2)
    assert float(value_loss(v, old, ret, clip_param=0.2, clipped=False)) == pytest.approx((0.25 + 1.0) / 2)
    v2 = torch.tensor([1.0])
    # unclipped (1-1.5)^2=.25 ; clipped from old .1: v=.3 -> 1.44 ; the max keeps the pessimistic 1.44
    assert float(
        value_loss(v2, torch.tensor([0.1]), torch.tensor([1.5]), clip_param=0.2, clipped=True)
    ) == pytest.approx(1.44)


def test_gaussian_kl_matches_torch():
    m0, s0, m1, s1 = torch.randn(4, 3), torch.rand(3) + 0.1, torch.randn(4, 3), torch.rand(3) + 0.1
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(m0, s0), torch.distributions.Normal(m1, s1)
    )
    torch.testing.assert_close(gaussian_kl(m0, s0.expand(4, 3), m1, s1.expand(4, 3)), ref.sum(-1).mean())
    assert float(gaussian_kl(m0, s0, m0, s0)) == pytest.approx(0.0, abs=1e-7)


def test_adaptive_kl_rule():
    assert adapt_lr(1e-4, 0.05, desired_kl=0.01, lr_min=1e-5, lr_max=2e-4) == pytest.approx(1e-4 / 1.5)
    assert adapt_lr(1e-4, 0.001, desired_kl=0.01, lr_min=1e-5, lr_max=2e-4) == pytest.approx(1.5e-4)
    assert adapt_lr(1e-4, 0.01, desired_kl=0.01, lr_min=1e-5, lr_max=2e-4) == pytest.approx(1e-4)
    assert adapt_lr(1.9e-4, 0.0001, desired_kl=0.01, lr_min=1e-5, lr_max=2e-4) == pytest.approx(2e-4)
    assert adapt_lr(1.1e-5, 1.0, desired_kl=0.01, lr_min=1e-5, lr_max=2e-4) == pytest.approx(1e-5)
    assert math.isfinite(adapt_lr(1e-4, float("nan"), desired_kl=0.01, lr_min=1e-5, lr_max=2e-4))
