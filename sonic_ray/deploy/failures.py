"""Failure checks for the sim-to-sim loop: the metadata's evaluation terminations, in numpy.

Same terms, parameters and meaning as `sonic_ray.envs.terminations` (which this module does not
import): each compares the robot after a step with the reference frame it just tracked, bodies
re-anchored onto the robot as `MotionCommand` does (anchor xy from the robot, height from the
reference, heading turned by the yaw between the anchors). Time-out terms (`time_out: true`) are
not failures and are skipped: sim2sim runs each clip to its end. A reference without body poses
(a VR-target file) cannot drive the body terms (ee_body_pos, foot_pos): they are skipped for it.
Adaptive thresholds (training only: they need the running reference height the env keeps) are
refused: evaluation terminations use fixed ones, as gear_sonic's do.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from sonic_ray.deploy.observations import (
    Reference,
    RobotState,
    quat_apply,
    quat_conj,
    quat_mul,
    yaw_quat,
)

BODY_TERMS = ("ee_body_pos", "foot_pos")


def _fixed(name: str, params: Mapping) -> None:
    if params.get("adaptive", False):
        raise ValueError(
            f"eval_terminations.{name}: adaptive thresholds follow the env's running reference "
            "height and have no sim2sim implementation; evaluation uses fixed thresholds"
        )


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
                raise KeyError(
                    f"eval_terminations: term {name!r} has no sim2sim implementation "
                    f"(sonic_ray/deploy/failures.py knows {sorted(known)})"
                )
            params = dict(spec.get("params") or {})
            _fixed(name, params)
            self.terms.append((name, params))

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

    def anchor_pos(
        self, state, ref, frame, threshold, adaptive=False, down_threshold=0.5, root_height_threshold=1.0
    ):
        return bool(abs(ref.at("anchor_pos_w", frame)[2] - state.body_pos_w[self.anchor][2]) > threshold)

    def ee_body_pos(
        self,
        state,
        ref,
        frame,
        threshold,
        adaptive=False,
        down_threshold=0.5,
        root_height_threshold=0.5,
        body_names=None,
    ):
        ids = self._ids(body_names, self.ee)
        diff = reanchored_bodies(state, ref, frame, self.anchor)[ids] - state.body_pos_w[ids]
        return bool((np.abs(diff[:, 2]) > threshold).any())

    def anchor_ori(self, state, ref, frame, threshold):
        """Squared rotation angle (rad^2) between the anchors, heading included."""
        dot = min(abs(float(np.dot(ref.at("anchor_quat_w", frame), state.body_quat_w[self.anchor]))), 1.0)
        return bool((2.0 * np.arccos(dot)) ** 2 > threshold)

    def foot_pos(self, state, ref, frame, threshold, body_names=None):
        ids = self._ids(body_names, self.feet)
        err = np.linalg.norm(
            reanchored_bodies(state, ref, frame, self.anchor)[ids] - state.body_pos_w[ids], axis=-1
        )
        return bool((err > threshold).any())
