"""Shared builders for the sim tests: the real G1 model, sims of every importable backend, poses."""

from __future__ import annotations

import pytest
import torch

from sonic_ray.robots.registry import load_model, model_mjcf
from sonic_ray.sim import available_backends, make_sim

BACKEND_PARAMS = [
    pytest.param("mujoco", id="mujoco"),
    pytest.param(
        "mujoco_warp",
        id="mujoco_warp",
        marks=pytest.mark.skipif(
            "mujoco_warp" not in available_backends(), reason="mujoco_warp / warp-lang not installed"
        ),
    ),
    pytest.param(
        "isaaclab",
        id="isaaclab",
        marks=pytest.mark.skipif(
            "isaaclab" not in available_backends(),
            reason="Isaac Lab 3 not installed (Python 3.12: make test-isaaclab)",
        ),
    ),
]


@pytest.fixture(scope="session")
def g1():
    """(MjModel, RobotSpec) of the G1 built from its table."""
    return load_model("g1")


@pytest.fixture(params=BACKEND_PARAMS)
def backend(request):
    return request.param


def build(backend: str, model, num_envs: int = 3, **kw):
    if backend == "isaaclab":  # converts the MJCF the model was compiled from (the G1's, timestep 0.005)
        kw.setdefault("mjcf", model_mjcf("g1", timestep=float(model.opt.timestep)))
    return make_sim(backend, model, num_envs=num_envs, **kw)


def standing(robot, n: int, *, height: float = 0.0) -> dict:
    """reset() keyword arguments for n envs in the robot's default pose, at rest."""
    pos = torch.tensor(robot.default_root_pos, dtype=torch.float32).repeat(n, 1)
    pos[:, 2] += height
    return dict(
        root_pos=pos,
        root_quat=torch.tensor(robot.default_root_quat, dtype=torch.float32).repeat(n, 1),
        root_lin_vel=torch.zeros(n, 3),
        root_ang_vel=torch.zeros(n, 3),
        joint_pos=torch.tensor(robot.default_joint_pos, dtype=torch.float32).repeat(n, 1),
        joint_vel=torch.zeros(n, robot.num_joints),
    )


def random_state(robot, n: int, seed: int) -> dict:
    """reset() keyword arguments: a varied but valid state (unit quaternions, joints inside limits)."""
    g = torch.Generator().manual_seed(seed)
    quat = torch.randn(n, 4, generator=g)
    quat = quat / quat.norm(dim=1, keepdim=True)
    lo = torch.tensor(robot.joint_lower, dtype=torch.float32)
    hi = torch.tensor(robot.joint_upper, dtype=torch.float32)
    return dict(
        root_pos=torch.randn(n, 3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, 1.2]),
        root_quat=quat,
        root_lin_vel=torch.randn(n, 3, generator=g),
        root_ang_vel=torch.randn(n, 3, generator=g),
        joint_pos=lo + (hi - lo) * torch.rand(n, robot.num_joints, generator=g),
        joint_vel=torch.randn(n, robot.num_joints, generator=g),
    )


def default_targets(robot, n: int) -> torch.Tensor:
    return torch.tensor(robot.default_joint_pos, dtype=torch.float32).repeat(n, 1)
