"""TorchFK batching: the small-batch Hamilton product gives quat_mul's values bit for bit, and one
body's chain alone gives the full call's pose."""

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


def test_one_bodys_chain_gives_the_full_calls_pose_exactly():
    from sonic_ray.robots import TorchFK, load_model

    model, robot = load_model("g1")
    fk = TorchFK(model, robot)
    g = torch.Generator().manual_seed(0)
    args = torch.randn(5, 3, generator=g), torch.randn(5, 4, generator=g), torch.randn(5, 29, generator=g)
    pos, quat = fk.forward(*args)
    for name in (robot.anchor_body, "left_wrist_yaw_link", "right_ankle_roll_link"):
        i = fk.body_names.index(name)
        p, q = fk.forward(*args, only=name)
        assert torch.equal(p, pos[:, i]) and torch.equal(q, quat[:, i]), name
