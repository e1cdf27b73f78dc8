"""Failure checks for the sim-to-sim loop: the metadata's evaluation terminations, in numpy.

Same terms, parameters and meaning as `sonic_ray.envs.terminations` (which this module does not
import): each compares the robot after a step with the reference frame it just tracked, bodies
re-anchored onto the robot as `MotionCommand` does (anchor xy from the robot, height from the
reference, heading turned by the yaw between the anchors). Time-out terms (`time_out: true`) are
not failures and are skipped: sim2sim runs each clip to its end. A reference without body poses
(a VR-target file) cannot drive the body terms (ee_body_pos, foot_pos): they are skipped for it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sonic_ray.deploy.observations import (
    Reference,
    RobotState,
    quat_apply,
    quat_apply_inverse,
    quat_conj,
    quat_mul,
    yaw_quat,
)

_DOWN = np.array([0.0, 0.0, -1.0])
BODY_TERMS = ("ee_body_pos", "foot_pos")


def _threshold(threshold, ref_lin_vel_w, adaptive, lag_s, max_scale):
    if not adaptive:
        return threshold
    return np.minimum(threshold + lag_s * np.linalg.norm(ref_lin_vel_w, axis=-1), max_scale * threshold)


def reanchored_bodies(state: RobotState, ref: Reference, frame: int, anchor: int) -> np.ndarray:
    """(B,3) reference bodies at `frame` moved onto the robot's anchor (MotionCommand._relative)."""
    r_pos, r_quat = state.body_pos_w[anchor], state.body_quat_w[anchor]
    f_pos, f_quat = ref.at("anchor_pos_w", frame), ref.at("anchor_quat_w", frame)
    delta_pos = np.concatenate((r_pos[:2], f_pos[2:]))
    delta_q = yaw_quat(quat_mul(r_quat, quat_conj(f_quat)))
    body = ref.at("body_pos_w", frame)
    return delta_pos + quat_apply(np.broadcast_to(delta_q, (body.shape[0], 4)), body - f_pos)


class FailureChecks:
    """`first_failure(state, ref, frame)` -> the name of the first failing term, or None;
    `failures(...)` -> all of them."""

    def __init__(self, terms: Mapping[str, Mapping], meta: Mapping):
        self.names = list(meta["body_names"])
        self.anchor = self.names.index(meta["anchor_body"])
        self.ee = [self.names.index(b) for b in meta["end_effector_bodies"]]
        self.feet = [self.names.index(b) for b in meta["feet_bodies"]]
        self.terms = []
        known = {"anchor_pos", "ee_body_pos", "anchor_ori", "foot_pos"}
        for name, spec in terms.items():
            if spec.get("time_out", False):
                continue
            if name not in known:
                raise KeyError(f"eval_terminations: term {name!r} has no sim2sim implementation "
                               f"(sonic_ray/deploy/failures.py knows {sorted(known)})")
            self.terms.append((name, dict(spec.get("params") or {})))

    def _ids(self, body_names, default):
        return default if body_names is None else [self.names.index(b) for b in body_names]

    def first_failure(self, state: RobotState, ref: Reference, frame: int) -> str | None:
        return next(self._failing(state, ref, frame), None)

    def failures(self, state: RobotState, ref: Reference, frame: int) -> list[str]:
        """Every failing term, in the metadata's order (the viewer shows them all)."""
        return list(self._failing(state, ref, frame))

    def _failing(self, state: RobotState, ref: Reference, frame: int):
        has_bodies = "body_pos_w" in ref.data
        for name, p in self.terms:
            if name in BODY_TERMS and not has_bodies:
                continue
            if getattr(self, name)(state, ref, frame, **p):
                yield name

    def anchor_pos(self, state, ref, frame, threshold, adaptive=False, z_only=True, lag_s=0.1, max_scale=2.0):
        diff = ref.at("anchor_pos_w", frame) - state.body_pos_w[self.anchor]
        err = abs(diff[2]) if z_only else np.linalg.norm(diff)
        vel = ref.at("body_lin_vel_w", frame)[self.anchor] if adaptive else None
        return bool(err > _threshold(threshold, vel, adaptive, lag_s, max_scale))

    def ee_body_pos(self, state, ref, frame, threshold, adaptive=False, z_only=True, body_names=None, lag_s=0.1,
                    max_scale=2.0):
        ids = self._ids(body_names, self.ee)
        diff = reanchored_bodies(state, ref, frame, self.anchor)[ids] - state.body_pos_w[ids]
        err = np.abs(diff[:, 2]) if z_only else np.linalg.norm(diff, axis=-1)
        vel = ref.at("body_lin_vel_w", frame)[ids] if adaptive else None
        return bool((err > _threshold(threshold, vel, adaptive, lag_s, max_scale)).any())

    def anchor_ori(self, state, ref, frame, threshold):
        ref_g = quat_apply_inverse(ref.at("anchor_quat_w", frame), _DOWN)
        rob_g = quat_apply_inverse(state.body_quat_w[self.anchor], _DOWN)
        return bool(abs(ref_g[2] - rob_g[2]) > threshold)

    def foot_pos(self, state, ref, frame, threshold, body_names=None):
        ids = self._ids(body_names, self.feet)
        err = np.linalg.norm(reanchored_bodies(state, ref, frame, self.anchor)[ids] - state.body_pos_w[ids], axis=-1)
        return bool((err > threshold).any())
