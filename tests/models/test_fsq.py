import itertools

import pytest
import torch

from sonic_ray.models.fsq import FSQ


@pytest.mark.parametrize("bound", ["tanh", "clamp"])
def test_codebook_count_by_enumeration(bound):
    fsq = FSQ([3, 4, 2] if bound == "clamp" else [3, 4, 5], num_tokens=1, bound=bound)
    size = 24 if bound == "clamp" else 60
    assert fsq.codebook_size == size
    x = torch.linspace(-4.0, 4.0, 81)
    grid = torch.tensor(list(itertools.product(x, x, x)))
    codes = {tuple(c) for c in fsq(grid).tolist()}
    assert len(codes) == size
    idx = fsq.codes_to_indices(fsq(grid))
    assert idx.shape == (len(grid), 1) and set(idx.flatten().tolist()) == set(range(size))


def test_values_per_dimension_and_idempotence_of_clamp():
    fsq = FSQ([5, 2], num_tokens=2, bound="clamp")
    q = fsq(torch.randn(1000, 4) * 2)
    assert set(q[:, 0].tolist()) == {-1.0, -0.5, 0.0, 0.5, 1.0}  # odd: h = 2, k = -2..2
    assert set(q[:, 1].tolist()) == {-1.0, 0.0}  # even: h = 1, k = -1..0
    torch.testing.assert_close(fsq(q), q)


@pytest.mark.parametrize("bound", ["tanh", "clamp"])
def test_zero_is_a_code_for_every_level_count(bound):
    """Latents near zero (a fresh encoder) sit at a code's centre: small moves keep the code."""
    for levels in ([2], [3], [4], [7], [8], [32]):
        if bound == "tanh" and levels == [2]:
            continue  # rejected (test_tanh_rejects_two_levels)
        fsq = FSQ(levels, bound=bound)
        h = levels[0] // 2
        z = torch.tensor([[0.0], [0.4 / h], [-0.4 / h]])
        assert fsq(z).abs().max() == 0.0, levels
        codes = fsq(torch.linspace(-8, 8, 16001)[:, None]).unique()
        # L codes k / h, k = -h .. L-1-h (8 levels: -4/4 .. 3/4)
        torch.testing.assert_close(codes, torch.arange(-h, levels[0] - h, dtype=torch.float32) / h)


def test_straight_through_gradient_of_clamp_is_identity():
    fsq = FSQ([8, 8, 8], num_tokens=1, bound="clamp")
    x = (torch.randn(16, 3) * 3).requires_grad_()
    w = torch.randn(16, 3)
    (fsq(x) * w).sum().backward()
    torch.testing.assert_close(x.grad, w)


def test_tanh_gradient_is_about_one_near_zero_and_fades_at_saturation():
    """The tanh bound's gradient (through the rounding) is its slope: ~(L-1)/2 / (L//2) near zero,
    under 1e-3 by |z| = 5, so PPO cannot push a latent far past the code range."""
    for levels, near_zero in (([32], 0.97), ([8], 0.86), ([5], 1.0)):
        fsq = FSQ(levels)
        z = torch.tensor([[0.0], [5.0], [-5.0]], requires_grad=True)
        fsq(z).sum().backward()
        assert z.grad[0, 0] == pytest.approx(near_zero, abs=0.01), levels
        assert z.grad[1:].abs().max() < 1e-3, levels


def test_tanh_is_monotone_and_reaches_every_code_end():
    fsq = FSQ([8, 5])
    z = torch.linspace(-6, 6, 20001)[:, None].expand(-1, 2)
    q = fsq(z)
    assert (q.diff(dim=0) >= 0).all()
    assert q[0].tolist() == [-1.0, -1.0] and q[-1].tolist() == [0.75, 1.0]


def test_tanh_rejects_two_levels():
    with pytest.raises(ValueError, match="bound='clamp'"):
        FSQ([4, 2])
    assert FSQ([4, 2], bound="clamp").codebook_size == 8


@pytest.mark.parametrize("levels", [[1, 4], [], [8, 0]])
def test_bad_levels_rejected(levels):
    with pytest.raises(ValueError, match="levels"):
        FSQ(levels)


def test_release_size_codebook_is_too_large_for_indices_but_quantizes():
    fsq = FSQ([32] * 32, num_tokens=2)
    assert fsq(torch.randn(2, 64)).shape == (2, 64)
    with pytest.raises(ValueError, match="int64"):
        fsq.codes_to_indices(torch.zeros(1, 64))


@pytest.mark.parametrize("bound", ["tanh", "clamp"])
def test_quantize_is_the_forward_value_on_the_grid(bound):
    """`quantize` (inference, ONNX export) gives the straight-through forward's value, exactly on the grid."""
    fsq = FSQ([5, 8, 3], num_tokens=2, bound=bound)
    z = torch.randn(64, fsq.dim, generator=torch.Generator().manual_seed(0)) * 1.5
    q = fsq.quantize(z)
    torch.testing.assert_close(q, fsq(z), atol=1e-6, rtol=0)
    k = torch.round(q * fsq._half)
    torch.testing.assert_close(q, k / fsq._half, atol=0, rtol=0)  # a code, bit for bit
