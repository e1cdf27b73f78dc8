"""Unitree G1, 29 actuated joints (rev 1.0 torso), as a `RobotSpec` table.

Sources of the figures (numbers only; no file or mesh is copied):
- Link offsets, joint axes and ranges, masses, centres of mass, principal inertias: Unitree's
  MuJoCo description (unitreerobotics/unitree_mujoco `unitree_robots/g1/g1_29dof.xml`) in the
  revision that mjlab ships (`asset_zoo/robots/unitree_g1/xmls/g1.xml`, model `g1_29dof_rev_1_0`).
  That revision puts the torso_link origin 1 cm lower than Unitree's older file (waist_roll at
  z = 0.044 and torso at 0, versus 0.035 + 0.019) and raises the shoulders by 1 cm relative to
  the torso, so the shoulders end up where they were; its waist and torso masses differ too. We
  use that revision because mjlab, BeyondMimic and SONIC train on it.
- Motor classes (rotor inertias, gear ratios, effort and velocity limits) and the PD rule:
  mjlab `g1_constants.py`. Armature = reflected inertia of a two-stage planetary gearbox;
  kp = armature * w^2, kd = 2 * zeta * armature * w, w = 2*pi*10 Hz, zeta = 2.0.
  The ankles and waist roll/pitch are 4-bar linkages driven by two 5020 motors: twice the
  effort, armature and gains of one.
- Action scale: 0.25 * effort_limit / kp (BeyondMimic).
- Default pose: mjlab's / BeyondMimic's knees-bent keyframe (root at z = 0.76).
- Collision: mjlab's capsules and spheres (7 thin capsules per sole). Joint damping and
  frictionloss are 0 as in mjlab (Unitree's file has 0.05 / 0.2, tuned for its own PD).
- VR points: gear_sonic's `vr_3point_body` / `vr_3point_body_offset` for the G1.
- Task bodies (anchor, tracked subset, contact exemptions, reward points): gear_sonic's motion
  command and reward configs; docs/MDP.md lists each with its source.
"""

from __future__ import annotations

import math

from sonic_ray.robots.spec import BodySpec, GeomSpec, JointSpec, PointSpec, RobotSpec, capsule_from_to

# ---- motors -----------------------------------------------------------------------------------


def _two_stage_planetary(rotor_inertia, gears) -> float:
    """Rotor inertia reflected through a two-stage planetary gearbox (stage inertias, ratios)."""
    return rotor_inertia[0] * (gears[1] * gears[2]) ** 2 + rotor_inertia[1] * gears[2] ** 2 + rotor_inertia[2]


NATURAL_FREQ = 2.0 * math.pi * 10.0
DAMPING_RATIO = 2.0

# class -> (armature, effort limit N*m, velocity limit rad/s)
_MOTORS = {
    "5020": (_two_stage_planetary((0.139e-4, 0.017e-4, 0.169e-4), (1, 1 + 46 / 18, 1 + 56 / 16)), 25.0, 37.0),
    "7520_14": (_two_stage_planetary((0.489e-4, 0.098e-4, 0.533e-4), (1, 4.5, 1 + 48 / 22)), 88.0, 32.0),
    "7520_22": (_two_stage_planetary((0.489e-4, 0.109e-4, 0.738e-4), (1, 4.5, 5)), 139.0, 20.0),
    "4010": (_two_stage_planetary((0.068e-4, 0.0, 0.0), (1, 5, 5)), 5.0, 22.0),
}
_MOTORS["2x5020"] = (2 * _MOTORS["5020"][0], 2 * _MOTORS["5020"][1], _MOTORS["5020"][2])

_MOTOR_OF = {
    "hip_yaw": "7520_14",
    "waist_yaw": "7520_14",
    "hip_pitch": "7520_22",
    "hip_roll": "7520_22",
    "knee": "7520_22",
    "shoulder_pitch": "5020",
    "shoulder_roll": "5020",
    "shoulder_yaw": "5020",
    "elbow": "5020",
    "wrist_roll": "5020",
    "wrist_pitch": "4010",
    "wrist_yaw": "4010",
    "waist_roll": "2x5020",
    "waist_pitch": "2x5020",
    "ankle_pitch": "2x5020",
    "ankle_roll": "2x5020",
}

# Knees-bent standing pose (mjlab KNEES_BENT_KEYFRAME, used by BeyondMimic); unlisted joints 0.
_DEFAULT_POS = {
    "hip_pitch": -0.312,
    "knee": 0.669,
    "ankle_pitch": -0.363,
    "elbow": 0.6,
    "shoulder_pitch": 0.2,
    "left_shoulder_roll": 0.2,
    "right_shoulder_roll": -0.2,
}

_AXES = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}


def _joint(link: str, axis: str, lower: float, upper: float) -> JointSpec:
    # Joints are named after the link they move, except the torso's (waist pitch).
    base = "waist_pitch" if link == "torso_link" else link.removesuffix("_link")
    kind = base.removeprefix("left_").removeprefix("right_")
    armature, effort, velocity = _MOTORS[_MOTOR_OF[kind]]
    return JointSpec(
        name=f"{base}_joint",
        axis=_AXES[axis],
        lower=lower,
        upper=upper,
        effort_limit=effort,
        velocity_limit=velocity,
        armature=armature,
        kp=armature * NATURAL_FREQ**2,
        kd=2.0 * DAMPING_RATIO * armature * NATURAL_FREQ,
        default_pos=_DEFAULT_POS.get(base, _DEFAULT_POS.get(kind, 0.0)),
    )


def _link(
    name, parent, pos, mass, com, iquat, inertia, *, quat=(1.0, 0.0, 0.0, 0.0), joint=None, geoms=()
) -> BodySpec:
    j = None if joint is None else _joint(name, *joint)
    return BodySpec(
        name=name,
        parent=parent,
        pos=pos,
        quat=quat,
        mass=mass,
        com=com,
        inertia_quat=iquat,
        inertia=inertia,
        joint=j,
        geoms=tuple(geoms),
    )


def _foot_geoms(side: str, first_y: float) -> list[GeomSpec]:
    """Seven thin capsules under the sole (mjlab): condim 3, friction 0.6, priority over the floor."""
    z = -0.025
    segments = [
        ((0.1, -0.026, z), (0.05, first_y, z)),
        ((-0.044, -0.018, z), (0.123, -0.018, z)),
        ((-0.052, -0.01, z), (0.13, -0.01, z)),
        ((-0.054, 0.0, z), (0.132, 0.0, z)),
        ((-0.052, 0.01, z), (0.13, 0.01, z)),
        ((-0.044, 0.018, z), (0.123, 0.018, z)),
        ((0.1, 0.026, z), (0.05, 0.026, z)),
    ]
    return [
        capsule_from_to(f"{side}_foot{i + 1}_collision", a, b, 0.01, condim=3, friction=0.6, priority=1)
        for i, (a, b) in enumerate(segments)
    ]


def _leg(side: str) -> list[BodySpec]:
    s = 1.0 if side == "left" else -1.0
    p = f"{side}_"
    if side == "left":
        iq = [
            (0.954862, 0.293964, 0.0302556, 0.030122),
            (0.977808, -1.97119e-05, 0.205576, -0.0403793),
            (0.600598, 0.15832, 0.223482, 0.751181),
            (0.923418, -0.0327699, 0.0158246, 0.382067),
            (-0.000481092, 0.728482, -0.000618967, 0.685065),
        ]
        knee_inertia, roll_range = (0.0113804, 0.0112778, 0.00146458), (-0.5236, 2.9671)
    else:
        iq = [
            (0.954862, -0.293964, 0.0302556, -0.030122),
            (0.977808, 1.97119e-05, 0.205576, 0.0403793),
            (0.751181, 0.223482, 0.15832, 0.600598),
            (0.923439, 0.0345276, 0.0116333, -0.382012),
            (0.000481092, 0.728482, 0.000618967, 0.685065),
        ]
        knee_inertia, roll_range = (0.011374, 0.0112843, 0.00146452), (-2.9671, 0.5236)
    tilt = (0.996179, 0.0, -0.0873386, 0.0)
    untilt = (0.996179, 0.0, 0.0873386, 0.0)
    return [
        _link(
            p + "hip_pitch_link",
            "pelvis",
            (0.0, s * 0.064452, -0.1027),
            1.35,
            (0.002741, s * 0.047791, -0.02606),
            iq[0],
            (0.00181517, 0.00153422, 0.00116212),
            joint=("y", -2.5307, 2.8798),
        ),
        _link(
            p + "hip_roll_link",
            p + "hip_pitch_link",
            (0.0, s * 0.052, -0.030465),
            1.52,
            (0.029812, -s * 0.001045, -0.087934),
            iq[1],
            (0.00254986, 0.00241169, 0.00148755),
            quat=tilt,
            joint=("x", *roll_range),
            geoms=[capsule_from_to(p + "hip_collision", (0.02, 0, 0), (0.02, 0, -0.08), 0.06)],
        ),
        _link(
            p + "hip_yaw_link",
            p + "hip_roll_link",
            (0.025001, 0.0, -0.12412),
            1.702,
            (-0.057709, -s * 0.010981, -0.15078),
            iq[2],
            (0.00776166, 0.00717575, 0.00160139),
            joint=("z", -2.7576, 2.7576),
            geoms=[capsule_from_to(p + "thigh_collision", (0, 0, -0.03), (-0.06, 0, -0.17), 0.055)],
        ),
        _link(
            p + "knee_link",
            p + "hip_yaw_link",
            (-0.078273, s * 0.0021489, -0.17734),
            1.932,
            (0.005457, s * 0.003964, -0.12074),
            iq[3],
            knee_inertia,
            quat=untilt,
            joint=("y", -0.087267, 2.8798),
            geoms=[
                capsule_from_to(p + "shin_collision", (0.01, 0, 0), (0.01, 0, -0.15), 0.045),
                capsule_from_to(p + "linkage_brace_collision", (0.01, 0, -0.2), (0.01, 0, -0.28), 0.03),
            ],
        ),
        _link(
            p + "ankle_pitch_link",
            p + "knee_link",
            (0.0, -s * 9.4445e-05, -0.30001),
            0.074,
            (-0.007269, 0.0, 0.011137),
            (0.603053, 0.369225, 0.369225, 0.603053),
            (1.89e-05, 1.40805e-05, 6.9195e-06),
            joint=("y", -0.87267, 0.5236),
        ),
        _link(
            p + "ankle_roll_link",
            p + "ankle_pitch_link",
            (0.0, 0.0, -0.017558),
            0.608,
            (0.026505, 0.0, -0.016425),
            iq[4],
            (0.00167218, 0.0016161, 0.000217621),
            joint=("x", -0.2618, 0.2618),
            geoms=_foot_geoms(side, -0.027 if side == "left" else -0.026),
        ),
    ]


def _arm(side: str) -> list[BodySpec]:
    s = 1.0 if side == "left" else -1.0
    p = f"{side}_"
    if side == "left":
        iq = [
            (0.654152, 0.0130458, -0.326267, 0.68225),
            (0.701256, -0.0196223, -0.00710317, 0.712604),
            (0.716879, -0.0964829, -0.0679942, 0.687134),
            (0.541765, 0.636132, 0.388821, 0.388129),
            (0.575338, 0.411667, -0.574906, 0.411094),
            (0.249998, 0.661363, 0.293036, 0.643608),
            (0.510571, 0.526295, 0.468078, 0.493188),
        ]
        shoulder_y, roll_range = 0.10022, (-1.5882, 2.2515)
    else:
        iq = [
            (0.68225, -0.326267, 0.0130458, 0.654152),
            (0.712604, -0.00710317, -0.0196223, 0.701256),
            (0.687134, -0.0679942, -0.0964829, 0.716879),
            (0.388129, 0.388821, 0.636132, 0.541765),
            (0.411667, 0.575338, -0.411094, 0.574906),
            (0.643608, 0.293036, 0.661363, 0.249998),
            (0.493188, 0.468078, 0.526295, 0.510571),
        ]
        shoulder_y, roll_range = -0.10021, (-2.2515, 1.5882)
    return [
        _link(
            p + "shoulder_pitch_link",
            "torso_link",
            (0.0039563, shoulder_y, 0.24778),
            0.718,
            (0.0, s * 0.035892, -0.011628),
            iq[0],
            (0.000465864, 0.000432842, 0.000406394),
            quat=(0.990264, s * 0.139201, 1.38722e-05, -s * 9.86868e-05),
            joint=("y", -3.0892, 2.6704),
        ),
        _link(
            p + "shoulder_roll_link",
            p + "shoulder_pitch_link",
            (0.0, s * 0.038, -0.013831),
            0.643,
            (-0.000227, s * 0.00727, -0.063243),
            iq[1],
            (0.000691311, 0.000618011, 0.000388977),
            quat=(0.990268, -s * 0.139172, 0.0, 0.0),
            joint=("x", *roll_range),
        ),
        _link(
            p + "shoulder_yaw_link",
            p + "shoulder_roll_link",
            (0.0, s * 0.00624, -0.1032),
            0.734,
            (0.010773, -s * 0.002949, -0.072009),
            iq[2],
            (0.00106187, 0.00103217, 0.000400661),
            joint=("z", -2.618, 2.618),
            geoms=[capsule_from_to(p + "shoulder_yaw_collision", (0, 0, -0.08), (0, 0, 0.05), 0.035)],
        ),
        _link(
            p + "elbow_link",
            p + "shoulder_yaw_link",
            (0.015783, 0.0, -0.080518),
            0.6,
            (0.064956, s * 0.004454, -0.010062),
            iq[3],
            (0.000443035, 0.000421612, 0.000259353),
            joint=("y", -1.0472, 2.0944),
            geoms=[capsule_from_to(p + "elbow_yaw_collision", (-0.01, 0, -0.01), (0.08, 0, -0.01), 0.035)],
        ),
        _link(
            p + "wrist_roll_link",
            p + "elbow_link",
            (0.1, s * 0.00188791, -0.01),
            0.085445,
            (0.0171394, s * 0.000537591, 4.8864e-07),
            iq[4],
            (5.48211e-05, 4.96646e-05, 3.57798e-05),
            joint=("x", -1.97222, 1.97222),
        ),
        _link(
            p + "wrist_pitch_link",
            p + "wrist_roll_link",
            (0.038, 0.0, 0.0),
            0.48405,
            (0.0229999, -s * 0.00111685, -0.00111658),
            iq[5],
            (0.000430353, 0.000429873, 0.000164648),
            joint=("y", -1.61443, 1.61443),
            geoms=[capsule_from_to(p + "wrist_collision", (-0.01, 0, 0), (0.06, 0, 0), 0.035)],
        ),
        _link(
            p + "wrist_yaw_link",
            p + "wrist_pitch_link",
            (0.046, 0.0, 0.0),
            0.254576,
            (0.0708244, s * 0.000191745, 0.00161742),
            iq[6],
            (0.000646113, 0.000559993, 0.000147566),
            joint=("z", -1.61443, 1.61443),
            geoms=[capsule_from_to(p + "hand_collision", (0.07, 0, 0), (0.15, -s * 0.02, 0), 0.035)],
        ),
    ]


def _trunk() -> list[BodySpec]:
    return [
        _link(
            "waist_yaw_link",
            "pelvis",
            (0.0, 0.0, 0.0),
            0.214,
            (0.003494, 0.000233, 0.018034),
            (0.289697, 0.591001, -0.337795, 0.672821),
            (0.000163531, 0.000107714, 0.000102205),
            joint=("z", -2.618, 2.618),
        ),
        _link(
            "waist_roll_link",
            "waist_yaw_link",
            (-0.0039635, 0.0, 0.044),
            0.086,
            (0.0, 2.3e-05, 0.0),
            (0.5, 0.5, -0.5, 0.5),
            (8.245e-06, 7.079e-06, 6.339e-06),
            joint=("x", -0.52, 0.52),
        ),
        _link(
            "torso_link",
            "waist_roll_link",
            (0.0, 0.0, 0.0),
            7.818,
            (0.00203158, 0.000339683, 0.184568),
            (0.999803, -6.03319e-05, 0.0198256, 0.00131986),
            (0.121847, 0.109825, 0.0273735),
            joint=("y", -0.52, 0.52),
            geoms=[
                capsule_from_to("torso_collision", (0.01, 0, 0.08), (0.01, 0, 0.2), 0.09),
                GeomSpec("head_collision", "sphere", (0.06,), pos=(0.0, 0.0, 0.43)),
            ],
        ),
    ]


_PELVIS = BodySpec(
    name="pelvis",
    parent=None,
    pos=(0.0, 0.0, 0.793),
    mass=3.813,
    com=(0.0, 0.0, -0.07605),
    inertia_quat=(1.0, 0.0, -0.000399148, 0.0),
    inertia=(0.010549, 0.0093089, 0.0079184),
    geoms=(GeomSpec("pelvis_collision", "sphere", (0.07,), pos=(0.0, 0.0, -0.08)),),
)

# gear_sonic's G1 VR 3-point targets: the head point rides on the torso, the hands on the wrists.
_VR_POINTS = (
    PointSpec("head", "torso_link", (0.0, 0.0, 0.35)),
    PointSpec("left_hand", "left_wrist_yaw_link", (0.18, -0.025, 0.0)),
    PointSpec("right_hand", "right_wrist_yaw_link", (0.18, 0.025, 0.0)),
)

# gear_sonic's local point-tracking reward as its release experiment sets it (`reward_point_body`
# overridden in sonic_release.yaml): a head point 0.5 m above the torso origin and the two wrist
# origins. (Its base command config has five: pelvis, wrists +18 cm, ankles.)
_REWARD_POINTS = (
    PointSpec("head", "torso_link", (0.0, 0.0, 0.5)),
    PointSpec("left_wrist", "left_wrist_yaw_link"),
    PointSpec("right_wrist", "right_wrist_yaw_link"),
)

# gear_sonic's tracked bodies (motion command `body_names`): what its body rewards average over.
_TRACKED_BODIES = (
    "pelvis",
    "left_hip_roll_link",
    "left_knee_link",
    "left_ankle_roll_link",
    "right_hip_roll_link",
    "right_knee_link",
    "right_ankle_roll_link",
    "torso_link",
    "left_shoulder_roll_link",
    "left_elbow_link",
    "left_wrist_yaw_link",
    "right_shoulder_roll_link",
    "right_elbow_link",
    "right_wrist_yaw_link",
)

# SMPL's 24 joints placed on the G1. APPROXIMATE, our own choice: hips at the hip-roll joints,
# knees/ankles/shoulders/elbows at the matching joint origins, spine/neck/head/collars spaced
# along the torso, feet at the toe end of the sole, hands 10 cm past the wrist-yaw joint. Good
# enough to give the SMPL encoder robot-consistent keypoints; not a calibrated retarget.
_SMPL_KEYPOINTS = (
    PointSpec("Pelvis", "pelvis"),
    PointSpec("L_Hip", "left_hip_roll_link"),
    PointSpec("R_Hip", "right_hip_roll_link"),
    PointSpec("Spine1", "torso_link", (0.0, 0.0, 0.06)),
    PointSpec("L_Knee", "left_knee_link"),
    PointSpec("R_Knee", "right_knee_link"),
    PointSpec("Spine2", "torso_link", (0.0, 0.0, 0.15)),
    PointSpec("L_Ankle", "left_ankle_roll_link"),
    PointSpec("R_Ankle", "right_ankle_roll_link"),
    PointSpec("Spine3", "torso_link", (0.0, 0.0, 0.22)),
    PointSpec("L_Foot", "left_ankle_roll_link", (0.12, 0.0, -0.025)),
    PointSpec("R_Foot", "right_ankle_roll_link", (0.12, 0.0, -0.025)),
    PointSpec("Neck", "torso_link", (0.0, 0.0, 0.33)),
    PointSpec("L_Collar", "torso_link", (0.0, 0.05, 0.26)),
    PointSpec("R_Collar", "torso_link", (0.0, -0.05, 0.26)),
    PointSpec("Head", "torso_link", (0.0, 0.0, 0.43)),
    PointSpec("L_Shoulder", "left_shoulder_roll_link"),
    PointSpec("R_Shoulder", "right_shoulder_roll_link"),
    PointSpec("L_Elbow", "left_elbow_link"),
    PointSpec("R_Elbow", "right_elbow_link"),
    PointSpec("L_Wrist", "left_wrist_roll_link"),
    PointSpec("R_Wrist", "right_wrist_roll_link"),
    PointSpec("L_Hand", "left_wrist_yaw_link", (0.1, 0.0, 0.0)),
    PointSpec("R_Hand", "right_wrist_yaw_link", (0.1, 0.0, 0.0)),
)

G1 = RobotSpec(
    name="g1",
    bodies=(_PELVIS, *_leg("left"), *_leg("right"), *_trunk(), *_arm("left"), *_arm("right")),
    root_body="pelvis",
    anchor_body="pelvis",  # gear_sonic's motion command `anchor_body`
    feet_bodies=("left_ankle_roll_link", "right_ankle_roll_link"),
    end_effector_bodies=(
        "left_ankle_roll_link",
        "right_ankle_roll_link",
        "left_wrist_yaw_link",
        "right_wrist_yaw_link",
    ),
    tracked_bodies=_TRACKED_BODIES,
    # gear_sonic's undesired_contacts excludes the ankles, wrists and elbows (hands and forearms
    # may touch the body or props).
    contact_ok_bodies=("left_wrist_yaw_link", "right_wrist_yaw_link", "left_elbow_link", "right_elbow_link"),
    vr_points=_VR_POINTS,
    reward_points=_REWARD_POINTS,
    smpl_keypoints=_SMPL_KEYPOINTS,
    default_root_pos=(0.0, 0.0, 0.76),
    meta={
        "model_revision": "g1_29dof_rev_1_0",
        "pd_natural_freq_hz": 10.0,
        "pd_damping_ratio": DAMPING_RATIO,
    },
)
