"""Backends by name, and the contact-model helpers shared by backends."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sonic_ray.sim import BACKENDS, BatchedSim, available_backends, make_sim
from sonic_ray.sim.base import ModelLayout, restitution_to_dampratio


def test_available_backends_are_known_and_build(g1):
    model, _ = g1
    names = available_backends()
    assert "mujoco" in names and set(names) <= set(BACKENDS)
    sim = make_sim("mujoco", model, num_envs=2, decimation=2)
    assert isinstance(sim, BatchedSim) and sim.step_dt == pytest.approx(2 * model.opt.timestep)


def test_unknown_backend_lists_the_known_ones(g1):
    with pytest.raises(ValueError, match="mujoco_warp"):
        make_sim("isaac", g1[0], num_envs=1)


def test_layout_rejects_a_model_without_a_free_root():
    import mujoco

    m = mujoco.MjModel.from_xml_string(
        "<mujoco><worldbody><body><joint/><geom size='.1'/></body></worldbody></mujoco>"
    )
    with pytest.raises(ValueError, match="free joint"):
        ModelLayout.of(m)


def test_restitution_maps_to_a_damping_ratio_that_bounces_back_e():
    e = np.array([0.0, 0.1, 0.5, 0.9])
    zeta = restitution_to_dampratio(e)
    assert zeta[0] == 1.0
    back = np.exp(-zeta[1:] * math.pi / np.sqrt(1 - zeta[1:] ** 2))
    np.testing.assert_allclose(back, e[1:], rtol=1e-9)
