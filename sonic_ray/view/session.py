"""A policy driving MuJoCo live, one control step per call: what `sonic-ray view policy` shows.

The loop is the sim-to-sim loop (`sonic_ray.deploy.sim2sim.Sim2Sim.begin/step`: deployment
observations, PD targets, physics at the metadata's rate, the evaluation terminations), so the
viewer shows what `sonic-ray sim2sim` measures. A policy is either an exported `policy_<enc>.onnx`
(with its sibling files for the other encoders) or a training checkpoint, whose graphs run in
torch with the metadata their export would carry (`deploy.export.prepare_export`). References
are built per clip as sim2sim builds them (`deploy.reference.motion_references`).

Unlike sim2sim, an evaluation termination does not end the episode: the viewer reports which
terms would fire (and the first step one did) and keeps stepping; a clip's end starts it again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sonic_ray.deploy.export import file_metadata, prepare_export
from sonic_ray.deploy.observations import Reference
from sonic_ray.deploy.onnx_meta import MetadataError, _jsonable, read_metadata
from sonic_ray.deploy.reference import motion_references
from sonic_ray.deploy.sim2sim import OnnxPolicy, Sim2Sim
from sonic_ray.motion.motion_lib import MotionLib
from sonic_ray.robots import TorchFK, load_model

# The training push (configs/env/events/sonic.yaml, push_robot): a random root velocity, m/s.
PUSH_LIN_VEL_XY = (-0.5, 0.5)
PUSH_LIN_VEL_Z = (-0.2, 0.2)
ENCODER_ORDER = ("g1", "teleop", "smpl")


class TorchPolicy:
    """A checkpoint's policy for one encoder (encoder, FSQ, g1_dyn decoder in torch), called like
    `OnnxPolicy`: observation groups -> action (A,) float64; `meta` as its ONNX file would carry."""

    def __init__(self, graph: torch.nn.Module, meta: Mapping):
        self.graph, self.meta = graph.eval(), dict(meta)
        self.input_names = [i["name"] for i in self.meta["inputs"]]

    def __call__(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        with torch.no_grad():
            x = [torch.as_tensor(obs[n], dtype=torch.float32)[None] for n in self.input_names]
            return self.graph(*x)[0].numpy().astype(np.float64)


def checkpoint_policies(checkpoint: str | Path) -> tuple[dict[str, TorchPolicy], str]:
    """({encoder: policy}, the motion store of the checkpoint's config: motions.store, else the
    synthetic set's cache, never built here: the viewer writes nothing) from a checkpoint or run dir
    (its latest). CheckpointError / ValueError name the checkpoint."""
    import json

    torch.set_num_threads(1)
    prep = prepare_export(checkpoint)
    out = {}
    for spec in prep.specs:
        if spec.kind == "policy":
            # through JSON, as a reader of the exported file sees the metadata
            meta = json.loads(json.dumps(_jsonable(file_metadata(prep.base, spec, tol=math.nan))))
            out[spec.encoder] = TorchPolicy(spec.graph, meta)
    return out, prep.cfg.motions.store or prep.cfg.motions.synth_cache


def onnx_policies(path: str | Path) -> dict[str, OnnxPolicy]:
    """{encoder: policy}: the file, plus the other `policy_<enc>.onnx` beside it exported from the
    same checkpoint (same source and joints), so the viewer can switch encoders."""
    path = Path(path)
    first = OnnxPolicy(path)
    out = {first.meta["encoder"]: first}
    for other in sorted(path.parent.glob("policy_*.onnx")):
        if other.resolve() == path.resolve():
            continue
        try:
            meta = read_metadata(other)
        except MetadataError:
            continue
        same = (
            meta.get("source") == first.meta.get("source")
            and meta["joint_names"] == first.meta["joint_names"]
        )
        if meta["kind"] == "policy" and same and meta["encoder"] not in out:
            out[meta["encoder"]] = OnnxPolicy(other)
    return out


@dataclass
class StepReport:
    """What one step showed: the reference frame the robot is compared with, errors (mm) of the
    bodies (global, and root-relative), the terms that would end the episode now, and the first
    step of this episode at which one did (with its term)."""

    frame: int
    num_frames: int
    error_mm: float
    error_local_mm: float
    failures: list[str] = field(default_factory=list)
    first_failure: tuple[int, str] | None = None


class PolicySession:
    """policies {encoder: policy with .meta}; store: a motion store for the references; encoder: the
    one acting first (default g1, else the first the policy has)."""

    def __init__(
        self,
        policies: Mapping[str, object],
        store: str | Path,
        *,
        clip: str | None = None,
        encoder: str | None = None,
        seed: int = 0,
    ):
        if not policies:
            raise ValueError("no policy to run")
        self.policies = {e: policies[e] for e in sorted(policies, key=_encoder_rank)}
        self.encoder = encoder or next(iter(self.policies))
        if self.encoder not in self.policies:
            raise KeyError(f"encoder {self.encoder!r}: this policy has {list(self.policies)}")
        meta = self.meta = self.policies[self.encoder].meta
        self.layouts = {}
        for p in self.policies.values():
            self.layouts.update(p.meta["observations"])
        store = Path(store)
        if not store.is_file():
            raise FileNotFoundError(f"{store}: motion store not found")
        model, robot = load_model(meta["robot"])
        if list(robot.joint_names) != list(meta["joint_names"]):
            raise ValueError(f"robot {meta['robot']!r}: joints differ from the policy's joint_names")
        self.lib = MotionLib(store, control_fps=float(meta["control_hz"]))
        self.fk = TorchFK(model, robot)
        self.sim = Sim2Sim(self.policies[self.encoder], seed=seed)
        self.rng = np.random.default_rng(seed)
        self._refs: dict[str, Reference] = {}
        self.clip = ""
        self.last: StepReport | None = None
        self.select_clip(clip or self.lib.names[0])

    @property
    def clip_names(self) -> list[str]:
        return list(self.lib.names)

    @property
    def ref(self) -> Reference:
        return self.sim.episode.ref

    def reference(self, name: str) -> Reference:
        if name not in self._refs:
            self._refs[name] = motion_references(self.lib, self.fk, self.meta, [name])[0]  # KeyError names it
        return self._refs[name]

    def select_clip(self, name: str) -> None:
        ref = self.reference(name)
        self.clip = name
        self._begin(ref)

    def set_encoder(self, encoder: str) -> None:
        if encoder not in self.policies:
            raise KeyError(f"encoder {encoder!r}: this policy has {list(self.policies)}")
        self.encoder = encoder  # the next step acts with it; observation histories carry on

    def reset(self) -> None:
        self._begin(self.ref)

    def _begin(self, ref: Reference) -> None:
        self.sim.begin(ref, layouts=self.layouts)
        self.first_failure: tuple[int, str] | None = None
        self.last = self._report([])

    def push(self) -> np.ndarray:
        """Add a random root velocity (the training push's ranges); returns it (3,) m/s, world."""
        dv = np.array(
            [
                self.rng.uniform(*PUSH_LIN_VEL_XY),
                self.rng.uniform(*PUSH_LIN_VEL_XY),
                self.rng.uniform(*PUSH_LIN_VEL_Z),
            ]
        )
        self.sim.data.qvel[:3] += dv
        return dv

    def step(self) -> StepReport:
        """One control step; at the clip's end the episode starts again from its first frame."""
        ep = self.sim.episode
        if ep.frame >= ep.ref.num_frames - 1:  # the last frame was shown (sim2sim stops here too)
            self._begin(ep.ref)
            return self.last
        first = self.sim.step(self.policies[self.encoder])
        if first == "nonfinite":
            failures = ["nonfinite"]
        else:
            failures = self.sim.checks.failures(ep.state, ep.ref, ep.frame - 1)
        if failures and self.first_failure is None:
            self.first_failure = (ep.frame, failures[0])
        if first == "nonfinite":
            self._begin(ep.ref)  # nothing left to show
            self.first_failure = (0, "nonfinite")
        self.last = self._report(failures)
        return self.last

    def _report(self, failures: list[str]) -> StepReport:
        ep = self.sim.episode
        f = min(ep.frame, ep.ref.num_frames - 1)
        rob, ref = self.robot_pose()[0], ep.ref.at("body_pos_w", f)
        err = np.linalg.norm(rob - ref, axis=-1).mean()
        local = np.linalg.norm((rob - rob[:1]) - (ref - ref[:1]), axis=-1).mean()
        return StepReport(
            f, ep.ref.num_frames, 1e3 * float(err), 1e3 * float(local), failures, self.first_failure
        )

    def robot_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(B,3), (B,4): the robot's bodies now, in the metadata's body order."""
        ids = self.sim.body_ids
        return self.sim.data.xpos[ids].copy(), self.sim.data.xquat[ids].copy()

    def reference_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(B,3), (B,4): the reference bodies at the frame the robot is compared with."""
        f = min(self.sim.episode.frame, self.ref.num_frames - 1)
        return self.ref.at("body_pos_w", f), self.ref.at("body_quat_w", f)

    def vr_targets(self) -> np.ndarray:
        """(P,3) the reference's VR 3-point targets at the compared frame (the teleop encoder's input)."""
        return self.ref.at("vr_pos_w", min(self.sim.episode.frame, self.ref.num_frames - 1))


def _encoder_rank(name: str) -> tuple[int, str]:
    return (ENCODER_ORDER.index(name) if name in ENCODER_ORDER else len(ENCODER_ORDER), name)
