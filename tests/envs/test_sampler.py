"""Start samplers and failure statistics against hand-worked numbers (milliseconds, no sim)."""

import math

import numpy as np
import pytest
import torch

from sonic_ray.envs.sampler import AdaptiveStartSampler, UniformStartSampler, bins_per_clip, global_bin_ids
from sonic_ray.envs.sampler_stats import FailureStats

# Clip 0: 101 frames -> 100 start frames -> bins [0,50) [50,100); clip 1: 26 frames -> 25 starts -> one bin.
FRAMES = torch.tensor([101, 26])


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_layout_bins_cover_start_frames_only():
    s = UniformStartSampler(torch.tensor([101, 11, 1]), bin_size_frames=50)
    # 100, 10 and 1 start frames: ceil(100/50) + ceil(10/50) + ceil(1/50) bins
    assert s.num_bins == 4 and s.bin_offset.tolist() == [0, 2, 3]
    assert s.bin_valid.tolist() == [50, 50, 10, 1] and s.bin_start.tolist() == [0, 50, 0, 0]
    # the final frame (100, no successor) belongs to the clip's last bin
    assert s.bin_of(torch.tensor([0, 0, 0]), torch.tensor([49, 50, 100])).tolist() == [0, 1, 1]
    torch.testing.assert_close(s.uniform_probs, torch.tensor([50, 50, 10, 1], dtype=torch.float64) / 111)


def test_uniform_draws_and_counts():
    frames = torch.tensor([101, 11, 1])
    s = UniformStartSampler(frames, bin_size_frames=50)
    clip, start = s.sample(20000, _gen())
    assert (start < torch.clamp(frames[clip] - 1, min=1)).all()
    share = torch.bincount(clip, minlength=3).float() / 20000
    assert abs(share[0] - 100 / 111) < 0.02 and share[2] > 0  # frames with a successor, 1-frame clip too
    s.record(
        torch.tensor([0, 0, 1]),
        torch.tensor([10, 60, 0]),
        torch.tensor([70, 100, 5]),
        torch.tensor([True, False, True]),
    )
    assert s.bin_episodes.tolist() == [1, 1, 1, 0]  # where episodes started
    assert s.bin_visits.tolist() == [1, 2, 1, 0]  # 10->70 covers bins 0 and 1; 60->100 bin 1; clip 1 bin 2
    assert s.bin_failures.tolist() == [0, 1, 1, 0]  # where they failed
    state = s.state_dict()
    s2 = UniformStartSampler(frames, bin_size_frames=50)
    s2.load_state_dict(state)
    assert torch.equal(s2.bin_failures, s.bin_failures) and torch.equal(s2.bin_visits, s.bin_visits)
    with pytest.raises(ValueError, match="different motion shard"):
        UniformStartSampler(torch.tensor([101]), bin_size_frames=50).load_state_dict(state)


def test_global_bin_ids_of_a_shard_and_sparse_reports():
    all_frames = np.array([101, 26, 60])  # bins 2, 1, 2 -> global offsets 0, 2, 3
    assert bins_per_clip(all_frames, 50).tolist() == [2, 1, 2]
    ids = global_bin_ids(all_frames, [0, 2], 50)  # the shard holding clips 0 and 2
    assert ids.tolist() == [0, 1, 3, 4]
    s = UniformStartSampler(torch.tensor([101, 60]), bin_size_frames=50, global_bins=ids)
    s.record(torch.tensor([1, 1]), torch.tensor([0, 10]), torch.tensor([55, 20]), torch.tensor([True, False]))
    r = s.pop_report()
    # clip 1 of the shard is store clip 2: its bins 0 and 1 are global bins 3 and 4
    assert (
        r["bins"].tolist() == [3, 4] and r["visits"].tolist() == [2, 1] and r["failures"].tolist() == [0, 1]
    )
    assert len(s.pop_report()["bins"]) == 0  # popped: the next report starts empty
    assert s.bin_visits.tolist() == [0, 0, 2, 1]  # running totals stay


def _stats_after_one_report():
    st = FailureStats(3, smoothing=0.5, cap_multiple=2.0)
    st.update([{"bins": np.array([0, 1, 2]), "visits": np.array([4, 2, 5]), "failures": np.array([0, 2, 1])}])
    return st


def test_failure_stats_ema_rate_and_cap():
    st = _stats_after_one_report()
    # EMA: visits 0.5*[4,2,5] = [2,1,2.5], failures 0.5*[0,2,1] = [0,1,0.5] -> rates [0, 1, 0.2]
    np.testing.assert_allclose(st.raw_rates(), [0.0, 1.0, 0.2])
    # mean rate of visited bins (0 + 1 + 0.2)/3 = 0.4; cap 2 x 0.4 = 0.8
    np.testing.assert_allclose(st.rates(), [0.0, 0.8, 0.2], rtol=1e-6)
    st.update([])  # an iteration without reports decays both sums alike: rates unchanged
    np.testing.assert_allclose(st.raw_rates(), [0.0, 1.0, 0.2])
    st.update([{"bins": np.array([1]), "visits": np.array([2]), "failures": np.array([0])}])
    # visits [0.5, 0.25+1, 0.625], failures [0, 0.25, 0.125] -> bin 1: 0.25/1.25 = 0.2
    np.testing.assert_allclose(st.raw_rates(), [0.0, 0.2, 0.2])
    st2 = FailureStats(3, smoothing=0.5, cap_multiple=2.0)
    st2.load_state_dict(st.state_dict())
    np.testing.assert_array_equal(st2.rates(), st.rates())
    with pytest.raises(ValueError, match="different store or bin size"):
        st.update([{"bins": np.array([3]), "visits": np.array([1]), "failures": np.array([0])}])


def test_adaptive_probabilities_mix_failure_share_and_uniform_share():
    s = AdaptiveStartSampler(FRAMES, bin_size_frames=50, uniform_ratio=0.2, window_frames=0)
    torch.testing.assert_close(s.probabilities(), torch.tensor([0.4, 0.4, 0.2], dtype=torch.float64))
    s.set_rates(
        _stats_after_one_report().rates()
    )  # capped rates [0, 0.8, 0.2] -> failure share [0, 0.8, 0.2]
    # 0.2 x uniform [0.4, 0.4, 0.2] + 0.8 x [0, 0.8, 0.2]
    want = torch.tensor([0.08, 0.72, 0.20], dtype=torch.float64)
    torch.testing.assert_close(s.probabilities(), want)
    clip, start = s.sample(200_000, _gen(1))
    bins = s.bin_of(clip, start)
    share = torch.bincount(bins, minlength=3).double() / len(bins)
    torch.testing.assert_close(share, want, atol=5e-3, rtol=0)
    m = s.metrics()
    entropy = -sum(p * math.log(p) for p in want.tolist()) / math.log(3)
    assert m["sampler/entropy"] == pytest.approx(entropy)
    assert m["sampler/top_bin_share"] == pytest.approx(0.72)  # top 10% of 3 bins = the one failing most
    assert m["sampler/failing_bin_frac"] == pytest.approx(2 / 3)


def test_adaptive_start_moves_back_by_the_window_clamped_to_the_clip_start():
    s = AdaptiveStartSampler(FRAMES, bin_size_frames=50, uniform_ratio=0.0, window_frames=10)
    s.set_rates(np.array([0.0, 1.0, 1.0], dtype=np.float32))  # bins 1 and 2 fail alike
    clip, start = s.sample(100_000, _gen(2))
    c0 = start[clip == 0]
    assert c0.min() == 40 and c0.max() == 99  # bin 1 = frames 50..99, moved back 0..10
    # uniform in-bin frame minus a uniform 0..10 shift: mean 74.5 - 5
    assert abs(c0.double().mean().item() - 69.5) < 0.2
    c1 = start[clip == 1]
    assert c1.min() == 0 and c1.max() == 24  # clamped at the clip start
    assert abs((clip == 0).double().mean().item() - 0.5) < 0.01  # equal rates -> equal bin shares


def test_adaptive_without_failures_is_uniform_and_shifts_toward_failing_bins():
    s = AdaptiveStartSampler(FRAMES, bin_size_frames=50, uniform_ratio=0.1, window_frames=0)
    u = UniformStartSampler(FRAMES, bin_size_frames=50)
    a, b = s.sample(64, _gen(3)), u.sample(64, _gen(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # no failure seen: the uniform draw
    # A fake failure pattern: episodes that reach bin 2 (clip 1) fail there half the time, others never.
    st = FailureStats(s.num_bins, smoothing=0.1)
    g = _gen(4)
    shares = []
    for _ in range(5):
        clip, start = s.sample(2000, g)
        end = torch.minimum(start + 20, FRAMES[clip] - 1)
        failed = (clip == 1) & (torch.rand(len(clip), generator=g) < 0.5)
        s.record(clip, start, end, failed)
        st.update([s.pop_report()])
        s.set_rates(st.rates())
        shares.append((clip == 1).double().mean().item())
    assert abs(shares[0] - 0.2) < 0.03  # uniform: clip 1 holds 25 of 125 start frames
    assert shares[-1] > 0.85  # then 0.9 x failure share (all on bin 2) + 0.1 x 0.2


def test_bad_parameters_are_errors():
    with pytest.raises(ValueError, match="uniform_ratio"):
        AdaptiveStartSampler(FRAMES, uniform_ratio=1.5)
    with pytest.raises(ValueError, match="window_frames"):
        AdaptiveStartSampler(FRAMES, window_frames=-1)
    with pytest.raises(ValueError, match="smoothing"):
        FailureStats(3, smoothing=0.0)
    with pytest.raises(ValueError, match="do not cover"):
        AdaptiveStartSampler(FRAMES, global_bins=[5, 6, 7]).set_rates(np.zeros(3))


def test_failure_stats_update_works_on_read_only_buffers():
    """A table unpickled by Ray (zero-copy) holds read-only arrays; update must not write into them."""
    stats = FailureStats(4, smoothing=0.5)
    stats.visits.setflags(write=False)
    stats.failures.setflags(write=False)
    stats.update([{"bins": [1, 2], "visits": [2.0, 4.0], "failures": [1.0, 0.0]}])
    np.testing.assert_allclose(stats.visits, [0.0, 1.0, 2.0, 0.0])
    np.testing.assert_allclose(stats.raw_rates(), [0.0, 0.5, 0.0, 0.0])
