"""Start-bin probabilities and the sampler entropy the dashboard shows (hand-worked numbers)."""

import math

import pytest
import torch

from sonic_ray.envs.sampler import UniformStartSampler, start_entropy


def test_uniform_bin_probabilities_are_each_bins_share_of_valid_start_frames():
    # Clip 0: 101 frames -> starts 0..99 -> bins [0,50) 50, [50,100) 50, [100,101) none (last frame);
    # clip 1: 11 frames -> starts 0..9 -> 10; clip 2: one frame -> start 0 -> 1. Total 111.
    s = UniformStartSampler(torch.tensor([101, 11, 1]), bin_size_frames=50)
    torch.testing.assert_close(s.bin_probabilities(), torch.tensor([50, 50, 0, 10, 1], dtype=torch.float64) / 111)


def test_entropy_is_normalised_by_the_number_of_bins():
    s = UniformStartSampler(torch.tensor([101, 11, 1]), bin_size_frames=50)
    p = [50 / 111, 50 / 111, 10 / 111, 1 / 111]
    expected = -sum(x * math.log(x) for x in p) / math.log(5)
    assert start_entropy(s) == pytest.approx(expected, rel=1e-12)
    # 41 frames in bins of 10: starts 0..39 fill 4 bins evenly, the 5th bin holds only the last frame.
    even = UniformStartSampler(torch.tensor([41, 41]), bin_size_frames=10)
    assert start_entropy(even) == pytest.approx(math.log(8) / math.log(10))


class _Concentrated:
    def bin_probabilities(self):
        return torch.tensor([1.0, 0.0, 0.0, 0.0])


def test_entropy_of_one_bin_is_zero_and_absent_without_probabilities():
    assert start_entropy(_Concentrated()) == pytest.approx(0.0)
    assert start_entropy(object()) is None
    assert start_entropy(UniformStartSampler(torch.tensor([20]), bin_size_frames=50)) is None  # a single bin
