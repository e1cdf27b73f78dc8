"""TorchFK's small-batch Hamilton product gives quat_mul's values bit for bit."""

import pytest
import torch

from sonic_ray.robots.fk import _quat_mul
from sonic_ray.utils.rotations import quat_mul


@pytest.mark.parametrize("shape_a, shape_b", [((48, 4), (48, 4)), ((64, 1, 4), (64, 30, 4)), ((7, 4), (4,))])
def test_small_batch_product_equals_quat_mul_exactly(shape_a, shape_b):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(*shape_a, generator=g), torch.randn(*shape_b, generator=g)
    a[0], b[..., 1] = 0.0, -0.0  # signed zeros
    got, want = _quat_mul(a, b), quat_mul(a, b)
    assert got.shape == want.shape and torch.equal(got, want)
    assert torch.equal(torch.signbit(got), torch.signbit(want))
