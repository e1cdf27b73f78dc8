"""The G1 table: names, order, per-joint arrays and task metadata."""

import dataclasses

import numpy as np
import pytest

from sonic_ray.robots import G1, RobotSpec
from sonic_ray.robots.spec import BodySpec, PointSpec, capsule_from_to

UNITREE_JOINTS = (
    [
        f"{s}_{j}_joint"
        for s in ("left", "right")
        for j in ("hip_pitch", "hip_roll", "hip_yaw", "knee", "ankle_pitch", "ankle_roll")
    ]
    + ["waist_yaw_joint", "waist_roll_joint", "waist_pitch_joint"]
    + [
        f"{s}_{j}_joint"
        for s in ("left", "right")
        for j in (
            "shoulder_pitch",
            "shoulder_roll",
            "shoulder_yaw",
            "elbow",
            "wrist_roll",
            "wrist_pitch",
            "wrist_yaw",
        )
    ]
)
SMPL_24 = [
    "Pelvis",
    "L_Hip",
    "R_Hip",
    "Spine1",
    "L_Knee",
    "R_Knee",
    "Spine2",
    "L_Ankle",
    "R_Ankle",
    "Spine3",
    "L_Foot",
    "R_Foot",
    "Neck",
    "L_Collar",
    "R_Collar",
    "Head",
    "L_Shoulder",
    "R_Shoulder",
    "L_Elbow",
    "R_Elbow",
    "L_Wrist",
    "R_Wrist",
    "L_Hand",
    "R_Hand",
]


def test_joint_and_body_names_follow_unitree_order():
    assert list(G1.joint_names) == UNITREE_JOINTS
    expected_bodies = (
        ["pelvis"]
        + [
            f"{s}_{b}_link"
            for s in ("left", "right")
            for b in ("hip_pitch", "hip_roll", "hip_yaw", "knee", "ankle_pitch", "ankle_roll")
        ]
        + ["waist_yaw_link", "waist_roll_link", "torso_link"]
        + [
            f"{s}_{b}_link"
            for s in ("left", "right")
            for b in (
                "shoulder_pitch",
                "shoulder_roll",
                "shoulder_yaw",
                "elbow",
                "wrist_roll",
                "wrist_pitch",
                "wrist_yaw",
            )
        ]
    )
    assert list(G1.body_names) == expected_bodies
    assert G1.num_joints == 29 and G1.num_bodies == 30


def test_per_joint_arrays_are_consistent_and_read_only():
    for name in (
        "joint_lower",
        "joint_upper",
        "effort_limit",
        "velocity_limit",
        "armature",
        "kp",
        "kd",
        "default_joint_pos",
        "action_scale",
    ):
        a = getattr(G1, name)
        assert a.shape == (29,), name
        assert not a.flags.writeable, name
    assert np.all(G1.joint_lower < G1.default_joint_pos + 1e-12)
    assert np.all(G1.default_joint_pos < G1.joint_upper)
    w = 2 * np.pi * 10.0
    np.testing.assert_allclose(G1.kp, G1.armature * w**2, rtol=1e-6)
    np.testing.assert_allclose(G1.kd, 2 * 2.0 * G1.armature * w, rtol=1e-6)
    np.testing.assert_allclose(G1.action_scale, 0.25 * G1.effort_limit / G1.kp)
    # Left/right symmetry of everything but the mirrored roll/yaw ranges.
    for left, right in zip(range(6), range(6, 12)):
        assert G1.kp[left] == G1.kp[right] and G1.effort_limit[left] == G1.effort_limit[right]


def test_task_bodies_and_points():
    assert G1.anchor_body == "pelvis" and G1.root_body == "pelvis"  # gear_sonic's anchor_body
    assert set(G1.feet_bodies) == {"left_ankle_roll_link", "right_ankle_roll_link"}
    assert set(G1.end_effector_bodies) == set(G1.feet_bodies) | {
        "left_wrist_yaw_link",
        "right_wrist_yaw_link",
    }
    hands = {"left_wrist_yaw_link", "right_wrist_yaw_link", "left_elbow_link", "right_elbow_link"}
    assert set(G1.undesired_contact_bodies) == set(G1.body_names) - set(G1.feet_bodies) - hands
    assert len(G1.tracked_body_names) == 14 and set(G1.tracked_body_names) <= set(G1.body_names)
    assert [p.name for p in G1.smpl_keypoints] == SMPL_24
    assert [p.body for p in G1.vr_points] == ["torso_link", "left_wrist_yaw_link", "right_wrist_yaw_link"]
    ids, offsets = G1.point_table(G1.vr_points)
    assert ids.tolist() == [
        G1.body_index("torso_link"),
        G1.body_index("left_wrist_yaw_link"),
        G1.body_index("right_wrist_yaw_link"),
    ]
    assert offsets.shape == (3, 3)
    assert G1.joint_index("waist_yaw_joint") == 12
    np.testing.assert_array_equal(G1.feet_body_ids, [6, 12])


def test_unknown_names_raise_with_the_name():
    with pytest.raises(KeyError, match="no body 'head_link'"):
        G1.body_index("head_link")
    with pytest.raises(KeyError, match="no joint 'neck_joint'"):
        G1.joint_index("neck_joint")


def test_bad_tables_are_rejected():
    bodies = list(G1.bodies)
    swapped = bodies[:1] + [bodies[2], bodies[1]] + bodies[3:]
    with pytest.raises(ValueError, match="before it is defined"):
        dataclasses.replace(G1, bodies=tuple(swapped))
    orphan = BodySpec("floating", "pelvis", (0, 0, 0), 1.0, (0, 0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match="no joint"):
        dataclasses.replace(G1, bodies=(*bodies, orphan))
    with pytest.raises(ValueError, match="unknown body 'nose'"):
        dataclasses.replace(G1, vr_points=(PointSpec("x", "nose"),))
    assert isinstance(dataclasses.replace(G1, name="g1_copy"), RobotSpec)


def test_capsule_from_to_matches_segment():
    a, b = np.array([0.1, -0.02, 0.0]), np.array([-0.05, 0.03, -0.2])
    g = capsule_from_to("c", a, b, 0.03)
    w, x, y, z = g.quat
    # local z axis of the capsule, rotated into the body frame
    axis = np.array([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)])
    np.testing.assert_allclose(np.asarray(g.pos) + g.size[1] * axis, b, atol=1e-12)
    np.testing.assert_allclose(np.asarray(g.pos) - g.size[1] * axis, a, atol=1e-12)
