"""Robots by name and external MJCF files of the same robot."""

import numpy as np
import pytest
import torch

from sonic_ray.robots import ROBOTS, TorchFK, build_spec, get_robot, load_model


def test_get_robot_and_unknown_name():
    assert get_robot("g1") is ROBOTS["g1"]
    with pytest.raises(KeyError, match=r"unknown robot 'h1'.*'g1'"):
        get_robot("h1")


def _write(tmp_path, xml, name="robot.xml"):
    path = tmp_path / name
    path.write_text(xml)
    return path


def test_external_mjcf_roundtrip(tmp_path):
    built, robot = load_model("g1")
    path = _write(tmp_path, build_spec(robot).to_xml())
    model, robot2 = load_model("g1", mjcf_path=path, timestep=0.004)
    assert robot2 is robot and model.opt.timestep == 0.004
    assert model.nu == 29
    fk = TorchFK(model, robot, dtype=torch.float64)
    q = torch.tensor(robot.default_joint_pos)
    pos, _ = fk(torch.tensor([0.0, 0.0, 0.76], dtype=torch.float64), torch.tensor([1.0, 0, 0, 0]), q)
    pos_built, _ = TorchFK(built, robot, dtype=torch.float64)(
        torch.tensor([0.0, 0.0, 0.76]), torch.tensor([1.0, 0, 0, 0]), q
    )
    # MJCF text keeps ~8 significant digits
    np.testing.assert_allclose(pos.numpy(), pos_built.numpy(), atol=1e-6)


def test_swapped_joints_name_the_file_and_joint(tmp_path):
    xml = build_spec(get_robot("g1")).to_xml()
    a, b = "left_elbow_joint", "left_wrist_roll_joint"
    xml = xml.replace(a, "@@").replace(b, a).replace("@@", b)
    path = _write(tmp_path, xml, "swapped.xml")
    with pytest.raises(ValueError, match=rf"swapped\.xml.*#18 is '{b}'.*expects '{a}'"):
        load_model("g1", mjcf_path=path)


def test_missing_actuator_is_named(tmp_path):
    spec = build_spec(get_robot("g1"))
    spec.delete(spec.actuator("left_knee"))
    spec.delete(spec.key("default"))  # its ctrl has one entry per actuator
    path = _write(tmp_path, spec.to_xml(), "no_knee.xml")
    with pytest.raises(
        ValueError, match=r"no_knee\.xml.*no actuator drives joint\(s\) \['left_knee_joint'\]"
    ):
        load_model("g1", mjcf_path=path)


def test_missing_file_and_broken_xml(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.xml"):
        load_model("g1", mjcf_path=tmp_path / "nope.xml")
    path = _write(tmp_path, "<mujoco><worldbody><body></mujoco>", "broken.xml")
    with pytest.raises(ValueError, match="broken.xml"):
        load_model("g1", mjcf_path=path)
