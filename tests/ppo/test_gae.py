import pytest
import torch

from sonic_ray.ppo.batch import next_values_from
from sonic_ray.ppo.gae import compute_gae

G, L = 0.9, 0.5


def col(*v):
    return torch.tensor(v, dtype=torch.float64).view(-1, 1)


def test_gae_without_episode_end():
    r, v, nv = col(1, 2, 3), col(0.5, 1.0, 1.5), col(1.0, 1.5, 2.0)
    adv, ret = compute_gae(r, v, col(0, 0, 0).bool(), col(0, 0, 0).bool(), nv, gamma=G, lam=L)
    # deltas: d2 = 3 + .9*2.0 - 1.5 = 3.3 ; d1 = 2 + .9*1.5 - 1.0 = 2.35 ; d0 = 1 + .9*1.0 - .5 = 1.4
    # A2 = 3.3 ; A1 = 2.35 + .45*3.3 = 3.835 ; A0 = 1.4 + .45*3.835 = 3.12575
    torch.testing.assert_close(adv, col(3.12575, 3.835, 3.3))
    torch.testing.assert_close(ret, adv + v)


def test_terminated_does_not_bootstrap_and_cuts_recursion():
    r, v, nv = col(1, 2, 3), col(0.5, 1.0, 1.5), col(1.0, 7.0, 2.0)
    term = col(0, 1, 0).bool()
    adv, _ = compute_gae(r, v, term, col(0, 0, 0).bool(), nv, gamma=G, lam=L)
    # d1 = 2 + 0 - 1.0 = 1.0 (next value 7.0 ignored) ; A1 = 1.0 (no continuation into step 2)
    # A2 = 3.3 ; A0 = 1.4 + .45*1.0 = 1.85
    torch.testing.assert_close(adv, col(1.85, 1.0, 3.3))


def test_truncated_bootstraps_from_final_value_and_cuts_recursion():
    r, v, nv = col(1, 2, 3), col(0.5, 1.0, 1.5), col(1.0, 7.0, 2.0)
    trunc = col(0, 1, 0).bool()
    adv, _ = compute_gae(r, v, col(0, 0, 0).bool(), trunc, nv, gamma=G, lam=L)
    # d1 = 2 + .9*7.0 - 1.0 = 7.3 ; A1 = 7.3 (the next row is another episode)
    # A0 = 1.4 + .45*7.3 = 4.685
    torch.testing.assert_close(adv, col(4.685, 7.3, 3.3))


def test_next_values_use_final_obs_of_truncated_steps():
    values = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    last = torch.tensor([7.0, 8.0])
    # env 1 truncated at step 0 (flat index 0*2+1): its final state's value is 9
    nv = next_values_from(values, last, torch.tensor([9.0]), torch.tensor([1]))
    torch.testing.assert_close(nv, torch.tensor([[3.0, 9.0], [5.0, 6.0], [7.0, 8.0]]))


@pytest.mark.parametrize("n", [1, 3])
def test_batched_envs_are_independent(n):
    torch.manual_seed(0)
    r, v, nv = torch.randn(5, n), torch.randn(5, n), torch.randn(5, n)
    term, trunc = torch.rand(5, n) < 0.2, torch.rand(5, n) < 0.2
    adv, _ = compute_gae(r, v, term, trunc, nv, gamma=G, lam=L)
    for j in range(n):
        a1, _ = compute_gae(
            r[:, j : j + 1],
            v[:, j : j + 1],
            term[:, j : j + 1],
            trunc[:, j : j + 1],
            nv[:, j : j + 1],
            gamma=G,
            lam=L,
        )
        torch.testing.assert_close(adv[:, j : j + 1], a1)
