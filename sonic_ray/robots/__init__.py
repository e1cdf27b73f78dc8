"""Robot descriptions (tables), the MuJoCo model builder, a registry, and torch forward kinematics."""

from sonic_ray.robots.builder import build_model, build_spec
from sonic_ray.robots.fk import TorchFK
from sonic_ray.robots.g1 import G1
from sonic_ray.robots.registry import ROBOTS, get_robot, load_model, model_mjcf
from sonic_ray.robots.spec import BodySpec, GeomSpec, JointSpec, PointSpec, RobotSpec

__all__ = [
    "G1",
    "ROBOTS",
    "BodySpec",
    "GeomSpec",
    "JointSpec",
    "PointSpec",
    "RobotSpec",
    "TorchFK",
    "build_model",
    "build_spec",
    "get_robot",
    "load_model",
    "model_mjcf",
]
