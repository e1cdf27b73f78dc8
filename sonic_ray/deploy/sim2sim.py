"""Sim-to-sim: an exported policy file driving plain MuJoCo, with nothing from the training code.

The loop reads only the ONNX file and its metadata (joint order, PD gains, default pose, action
scale, rates, observation layout). The robot model comes from `sonic_ray.robots` (its gains are
overwritten with the metadata's), references from `sonic_ray.motion` + `sonic_ray.robots.fk` (or a
VR-target file), observations from `sonic_ray.deploy.observations`. No env, model or PPO module is
imported: what runs here is what a robot would run.

The physics sits behind `sonic_ray.deploy.physics` (reset onto a reference, joint targets for
`decimation` substeps, the robot state, a finite check): by default one plain MjData as above; with
`backend=` one world of a training BatchedSim (`mujoco`, `mujoco_warp`, `isaaclab`), so a policy
trained on one simulator is measured on another by the same loop (a real sim-to-sim).

Per control step (physics at `physics_dt`, policy every `decimation` substeps): observations of
the robot state `obs_delay_steps` steps old (sensor latency; the last action is the controller's
own and is never delayed) and of the current reference frame, optional uniform noise (`obs_noise`
x each term's training noise) -> ONNX Runtime -> joint targets default + scale x action held by
the position actuators (PD) for `decimation` substeps.

Recording follows `sonic-ray eval`: row t pairs the robot at the t-th observation (the reset state
for t = 0) with the reference frame that observation shows; failures are the metadata's
evaluation terminations, checked after each step against the frame just tracked (as in training).
Metrics, videos and the output folder are `sonic_ray.eval`'s (clip_metrics, video.render_worst,
write_outputs: metrics.json, clips.parquet, report.html, videos/), so a sim2sim folder reads like an
eval folder; metrics.json's "sim2sim" entry holds the settings and the loop's speed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sonic_ray.deploy import failures
from sonic_ray.deploy.observations import (
    DeployContext,
    ObservationBuilder,
    Reference,
    RobotState,
    mujoco_body_ids,
    quat_apply,
    yaw_quat,
)
from sonic_ray.deploy.onnx_meta import MetadataError, ort_session, read_metadata
from sonic_ray.deploy.physics import PLAIN, make_physics
from sonic_ray.eval.metrics import clip_metrics, summarize
from sonic_ray.eval.report import VIDEOS_DIR, write_outputs
from sonic_ray.eval.runner import ClipTrajectory, worst_first_key
from sonic_ray.eval.video import render_worst

VR_POINT_NAMES = ("head", "left_hand", "right_hand")


class OnnxPolicy:
    """A `kind == "policy"` ONNX file: observation groups (its inputs, in order) -> action (A,)."""

    def __init__(self, path: str | Path, *, threads: int = 1):
        self.path = Path(path)
        self.meta = read_metadata(self.path)
        if self.meta["kind"] != "policy":
            raise MetadataError(
                f"{self.path}: a {self.meta['kind']}-only model; sim2sim needs a policy_<encoder>.onnx "
                "(encoder + FSQ + decoder)"
            )
        self.session = ort_session(self.path, threads=threads)
        self.input_names = [i["name"] for i in self.meta["inputs"]]
        got = [i.name for i in self.session.get_inputs()]
        if got != self.input_names:
            raise MetadataError(
                f"{self.path}: graph inputs {got} differ from the metadata's {self.input_names}"
            )

    def __call__(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        feed = {n: obs[n][None].astype(np.float32, copy=False) for n in self.input_names}
        return self.session.run(None, feed)[0][0].astype(np.float64)


@dataclass
class ClipRun:
    """One clip's trajectory: positions compared for metrics (T,K,3), qpos for videos (T,nq)."""

    name: str
    robot_pos_w: np.ndarray
    ref_pos_w: np.ndarray
    robot_qpos: np.ndarray
    ref_qpos: np.ndarray
    failed: bool
    failure: str | None
    ref_frames: int
    timing: dict = field(default_factory=dict)


@dataclass
class Episode:
    """The state of one running episode: the frame tracked next, the observation builder and its
    delayed robot states, the last action, and time spent in the policy and in physics."""

    ref: Reference
    builder: ObservationBuilder
    state: RobotState
    history: deque
    action: np.ndarray
    frame: int = 0
    policy_s: float = 0.0
    physics_s: float = 0.0


class Sim2Sim:
    """One robot, clips one after another, on `backend`'s physics (`deploy.physics`: "plain" is one
    MjData; a `sonic_ray.sim` backend name is one world of that BatchedSim, on `device`)."""

    def __init__(
        self,
        policy: OnnxPolicy,
        *,
        obs_delay_steps: int = 0,
        obs_noise: float = 0.0,
        seed: int = 0,
        backend: str = PLAIN,
        device: str = "cpu",
    ):
        if obs_delay_steps < 0 or obs_noise < 0:
            raise ValueError(
                f"obs_delay_steps and obs_noise must be >= 0, got {obs_delay_steps}, {obs_noise}"
            )
        meta = self.meta = policy.meta
        self.policy, self.delay, self.noise, self.seed = policy, int(obs_delay_steps), float(obs_noise), seed
        self.physics = make_physics(meta, backend, device=device)
        self.model = self.physics.model
        self.data = getattr(self.physics, "data", None)  # the plain MjData (the viewer reads it)
        self.body_names = list(meta["body_names"])
        self.body_ids = mujoco_body_ids(self.model, self.body_names)  # in `model` (the viewer's FK)
        self.ctx = DeployContext.from_metadata(meta)
        self.default = np.asarray(meta["default_joint_pos"], dtype=np.float64)
        self.scale = np.asarray(meta["action_scale"], dtype=np.float64)
        self.decimation = int(meta["decimation"])
        self.vr_body = np.array([self.body_names.index(p["body"]) for p in meta["vr_points"]])
        self.vr_offset = np.array([p["offset"] for p in meta["vr_points"]], dtype=np.float64)
        self.checks = failures.FailureChecks(meta.get("eval_terminations", {}), meta)

    # ---- reset ----------------------------------------------------------------------------------
    def reset(self, ref: Reference) -> RobotState:
        """Put the robot on the reference's first frame (a full reference), or standing in the
        default pose under the reference anchor with its heading (a VR-target reference)."""
        if "root_pos_w" in ref.data:
            return self.physics.reset(
                ref.at("root_pos_w", 0),
                ref.at("root_quat_w", 0),
                ref.at("root_lin_vel_w", 0),
                ref.at("root_ang_vel_w", 0),
                ref.at("joint_pos", 0),
                ref.at("joint_vel", 0),
            )
        a, zero = ref.at("anchor_pos_w", 0), np.zeros(3)
        root = np.array((a[0], a[1], float(self.meta["default_root_pos"][2])))
        quat = yaw_quat(ref.at("anchor_quat_w", 0))
        return self.physics.reset(root, quat, zero, zero, self.default, np.zeros_like(self.default))

    # ---- one control step at a time (the viewer drives these) ----------------------------------
    def begin(self, ref: Reference, *, layouts: Mapping | None = None) -> RobotState:
        """Reset onto `ref` and start an episode. `layouts`: the observation groups to build (default
        the policy's own; the viewer passes every encoder's, so it can switch policies between steps)."""
        builder = ObservationBuilder(
            layouts or self.meta["observations"], self.ctx, noise_scale=self.noise, seed=self.seed
        )
        state = self.reset(ref)
        self.episode = Episode(
            ref, builder, state, deque([state], maxlen=self.delay + 1), np.zeros(len(self.default))
        )
        return state

    def step(self, policy: Callable[[Mapping[str, np.ndarray]], np.ndarray] | None = None) -> str | None:
        """One control step tracking the episode's current frame (with `policy`, default this
        Sim2Sim's): observations, action, `decimation` physics substeps, then the evaluation
        terminations against that frame. Returns the failing term ("nonfinite" for a blow-up) or None;
        the episode moves on to the next frame either way."""
        ep, physics = self.episode, self.physics
        t0 = time.perf_counter()
        seen = ep.history[0]  # the state `delay` steps old (the oldest kept)
        f = ep.frame
        build = ep.builder.reset if f == 0 else ep.builder.step
        obs = build(seen, ep.ref, f, ep.action)
        ep.action = (policy or self.policy)(obs)
        t1 = time.perf_counter()
        physics.step(self.default + self.scale * ep.action)
        ep.policy_s, ep.physics_s = ep.policy_s + t1 - t0, ep.physics_s + time.perf_counter() - t1
        ep.frame = f + 1
        if not physics.finite():
            return "nonfinite"
        ep.state = physics.state()
        ep.history.append(ep.state)
        return self.checks.first_failure(ep.state, ep.ref, f)

    # ---- one clip -------------------------------------------------------------------------------
    def run_clip(self, ref: Reference, *, max_frames: int | None = None) -> ClipRun:
        self.begin(ref)
        ep = self.episode
        vr_mode = "body_pos_w" not in ref.data
        frames = ref.num_frames if max_frames is None else min(ref.num_frames, int(max_frames))
        rob_pos, ref_pos, rob_q, ref_q = [], [], [], []
        failed, why = False, None
        for f in range(frames):
            rob_pos.append(self._compared_points(ep.state, vr_mode))
            ref_pos.append(ref.at("vr_pos_w", f) if vr_mode else ref.at("body_pos_w", f))
            qpos = self.physics.qpos()
            rob_q.append(qpos)
            ref_q.append(
                qpos
                if vr_mode
                else np.concatenate(
                    (ref.at("root_pos_w", f), ref.at("root_quat_w", f), ref.at("joint_pos", f))
                )
            )
            why = self.step()
            if why is not None:
                failed = True
                break
        timing = {"steps": len(rob_pos), "policy_s": ep.policy_s, "physics_s": ep.physics_s}
        return ClipRun(
            ref.name,
            np.asarray(rob_pos),
            np.asarray(ref_pos),
            np.asarray(rob_q),
            np.asarray(ref_q),
            failed,
            why,
            ref.num_frames,
            timing,
        )

    def _compared_points(self, state: RobotState, vr_mode: bool) -> np.ndarray:
        if not vr_mode:
            return state.body_pos_w.copy()
        q = state.body_quat_w[self.vr_body]
        return state.body_pos_w[self.vr_body] + quat_apply(q, self.vr_offset)


def run(
    onnx_path: str | Path,
    references: list[Reference],
    *,
    out_dir: str | Path | None = None,
    obs_delay_steps: int = 0,
    obs_noise: float = 0.0,
    render: int = 0,
    width: int = 480,
    height: int = 352,
    seed: int = 0,
    on_clip: Callable[[dict], None] | None = None,
    view_command: str | None = None,
    backend: str = PLAIN,
    device: str = "cpu",
) -> dict:
    """Run every reference; with out_dir, write what `sonic-ray eval` writes (metrics.json with
    this run's settings and speed, clips.parquet, report.html, videos/ of the `render` worst
    clips; report.html gives `view_command`, with `{clip}`, for any clip). `backend`/`device`: the
    physics (`deploy.physics.make_physics`; default one plain MjData). Returns {"metrics":
    metrics.json content, "rows": per-clip rows, "speed": ...}."""
    policy = OnnxPolicy(onnx_path)
    sim = Sim2Sim(
        policy,
        obs_delay_steps=obs_delay_steps,
        obs_noise=obs_noise,
        seed=seed,
        backend=backend,
        device=device,
    )
    meta, fps, encoder = policy.meta, float(policy.meta["control_hz"]), str(policy.meta["encoder"])
    rows, runs = [], []
    t0 = time.perf_counter()
    for k, ref in enumerate(references):
        r = sim.run_clip(ref)
        names = VR_POINT_NAMES if "body_pos_w" not in ref.data else sim.body_names
        row = clip_metrics(
            r.robot_pos_w, r.ref_pos_w, fps=fps, failed=r.failed, body_names=list(names), encoder=encoder
        )
        row.update(
            clip=r.name,
            clip_index=k if ref.index is None else ref.index,
            clip_frames=r.ref_frames,
            completed=len(r.robot_pos_w) / r.ref_frames,
            failure=r.failure,
        )
        rows.append(row)
        runs.append((row, r))
        if on_clip is not None:
            on_clip(row)
    wall = time.perf_counter() - t0
    sim.physics.close()
    steps = sum(r.timing["steps"] for _, r in runs)
    speed = {
        "steps": steps,
        "wall_s": round(wall, 3),
        "steps_per_s": round(steps / max(wall, 1e-9), 1),
        "realtime_factor": round(steps / fps / max(wall, 1e-9), 2),
        "policy_ms_per_step": round(1e3 * sum(r.timing["policy_s"] for _, r in runs) / max(steps, 1), 4),
        "physics_ms_per_step": round(1e3 * sum(r.timing["physics_s"] for _, r in runs) / max(steps, 1), 4),
    }
    run_meta = {
        "sim2sim": {
            "onnx": str(onnx_path),
            "backend": backend,
            "obs_delay_steps": obs_delay_steps,
            "obs_noise": obs_noise,
            "physics_dt": meta["physics_dt"],
            "control_hz": fps,
            "source": meta.get("source"),
            "speed": speed,
        },
        "encoders": [encoder],
        "eval_seconds": round(wall, 3),
        "env_steps": steps,
        "env_steps_per_s": speed["steps_per_s"],
    }
    if out_dir is None:
        return {"metrics": {**summarize(rows), **run_meta}, "rows": rows, "speed": speed}
    out = Path(out_dir)
    worst = [
        ClipTrajectory(row, r.robot_qpos, r.ref_qpos, fps)
        for row, r in sorted(runs, key=lambda x: worst_first_key(x[0]))[: max(0, int(render))]
    ]
    videos = render_worst(
        sim.model, worst, out / VIDEOS_DIR, several_encoders=False, width=width, height=height
    )
    metrics = write_outputs(
        out,
        rows,
        meta=run_meta,
        videos=videos,
        title=f"sonic-ray sim2sim: {Path(onnx_path).name}" + ("" if backend == PLAIN else f" on {backend}"),
        view_command=view_command,
    )
    return {"metrics": metrics, "rows": rows, "speed": speed}
