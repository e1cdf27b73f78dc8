import itertools

import pytest
import torch

from sonic_ray.models.fsq import FSQ


def test_codebook_count_by_enumeration():
    fsq = FSQ([3, 4, 2], num_tokens=1)
    assert fsq.codebook_size == 24
    x = torch.linspace(-1.3, 1.3, 41)
    grid = torch.tensor(list(itertools.product(x, x, x)))
    codes = {tuple(c) for c in fsq(grid).tolist()}
    assert len(codes) == 24
    idx = fsq.codes_to_indices(fsq(grid))
    assert idx.shape == (len(grid), 1) and set(idx.flatten().tolist()) == set(range(24))


def test_values_per_dimension_and_idempotence():
    fsq = FSQ([5, 2], num_tokens=2)
    q = fsq(torch.randn(1000, 4) * 2)
    assert set(q[:, 0].tolist()) == {-1.0, -0.5, 0.0, 0.5, 1.0}  # odd: h = 2, k = -2..2
    assert set(q[:, 1].tolist()) == {-1.0, 0.0}  # even: h = 1, k = -1..0
    torch.testing.assert_close(fsq(q), q)


def test_zero_is_a_code_for_every_level_count():
    """Latents near zero (a fresh encoder) sit at a code's centre: small moves keep the code."""
    for levels in ([2], [3], [4], [7], [8], [32]):
        fsq = FSQ(levels)
        h = levels[0] // 2
        z = torch.tensor([[0.0], [0.4 / h], [-0.4 / h]])
        assert fsq(z).abs().max() == 0.0, levels
        codes = fsq(torch.linspace(-2, 2, 4001)[:, None]).unique()
        # L codes k / h, k = -h .. L-1-h (8 levels: -4/4 .. 3/4)
        torch.testing.assert_close(codes, torch.arange(-h, levels[0] - h, dtype=torch.float32) / h)


def test_straight_through_gradient_is_identity():
    fsq = FSQ([8, 8, 8], num_tokens=1)
    x = (torch.randn(16, 3) * 3).requires_grad_()
    w = torch.randn(16, 3)
    (fsq(x) * w).sum().backward()
    torch.testing.assert_close(x.grad, w)


@pytest.mark.parametrize("levels", [[1, 4], [], [8, 0]])
def test_bad_levels_rejected(levels):
    with pytest.raises(ValueError, match="levels"):
        FSQ(levels)


def test_release_size_codebook_is_too_large_for_indices_but_quantizes():
    fsq = FSQ([32] * 32, num_tokens=2)
    assert fsq(torch.randn(2, 64)).shape == (2, 64)
    with pytest.raises(ValueError, match="int64"):
        fsq.codes_to_indices(torch.zeros(1, 64))


def test_quantize_is_the_forward_value_on_the_grid():
    """`quantize` (inference, ONNX export) gives the straight-through forward's value, exactly on the grid."""
    fsq = FSQ([5, 8, 3], num_tokens=2)
    z = torch.randn(64, fsq.dim, generator=torch.Generator().manual_seed(0)) * 1.5
    q = fsq.quantize(z)
    torch.testing.assert_close(q, fsq(z), atol=1e-6, rtol=0)
    k = fsq.level_coordinate(q).round()
    torch.testing.assert_close(q, k / fsq._half, atol=0, rtol=0)  # a code, bit for bit
