"""A robot's joint table and FK as the motion importers and validators take them (numpy in and out).

Used by `motions import` (the CLI), the embedded synthetic store (`default_store`) and `bench motion`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from sonic_ray.robots.fk import TorchFK
from sonic_ray.robots.registry import get_robot, load_model

RobotContext = tuple[list[str], np.ndarray | None, np.ndarray | None, Callable | None]


def robot_context(robot_name: str) -> RobotContext:
    """(joint_names (J), lower (J,), upper (J,), fk or None) for `robot_name` from sonic_ray.robots.

    fk(root_pos (T,3), root_quat (T,4), joint_pos (T,J)) -> body_pos_w (T,B,3), numpy in and out,
    bodies in the robot table's order (a file with another body count/order gets a warning).
    """
    robot = get_robot(robot_name)
    lower = np.array([j.lower for j in robot.joints], dtype=np.float64)
    upper = np.array([j.upper for j in robot.joints], dtype=np.float64)
    model, _ = load_model(robot_name)
    fk_model = TorchFK(model, robot, dtype=torch.float64)

    def fk(root_pos, root_quat, joint_pos):
        with torch.no_grad():
            args = (
                torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (root_pos, root_quat, joint_pos)
            )
            return fk_model.forward(*args)[0].numpy()

    return list(robot.joint_names), lower, upper, fk
