"""MP4 of a tracked clip: the robot (solid) with its reference drawn over it (translucent), rendered
offscreen by MuJoCo on the CPU.

The reference is a second MjData of the same model: after the scene is built from the robot's
data, `mjv_addGeoms` appends the reference's geoms and they are recoloured translucent. No second
robot is compiled into the model, so any model whose qpos is (root pos, root quat, joints) works.
The free camera looks at the robot's pelvis every frame (a tracking camera); a 1 m grid drawn on
the floor around it shows drift. Shadows and reflections are off: on Mesa's software renderer
they cost three quarters of the frame time.

OpenGL: MuJoCo picks its backend from MUJOCO_GL when first imported. Without a display we choose
`egl` (Mesa's software EGL: packages libegl1, libegl-mesa0, libgl1-mesa-dri; `make setup`
installs them when missing) unless the caller chose one (`osmesa` works too where libOSMesa is).
If mujoco was imported before that choice (any simulation import does), its context class is
switched to the chosen backend's, which is what MuJoCo itself would have picked.
"""

from __future__ import annotations

import copy
import importlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from sonic_ray.eval.report import video_name

ROBOT_RGBA = (0.25, 0.45, 0.85, 1.0)
REF_RGBA = (0.95, 0.55, 0.15, 0.3)
GRID_RGBA = (0.3, 0.33, 0.36, 1.0)
GRID_HALF_EXTENT_M = 5


def ensure_gl_backend() -> str:
    """Choose MuJoCo's OpenGL backend for offscreen rendering (egl when unset and no display
    exists) and make an already imported mujoco use it; returns the choice."""
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"
    want = os.environ.get("MUJOCO_GL", "").lower().strip()
    if want in ("egl", "osmesa") and "mujoco" in sys.modules:
        from mujoco.rendering.classic import gl_context

        if getattr(gl_context, "_MUJOCO_GL", want) != want:
            gl_context.GLContext = importlib.import_module(f"mujoco.{want}").GLContext
    return want


def _scene_options(mujoco):
    opt = mujoco.MjvOption()
    opt.geomgroup[:] = 0
    opt.geomgroup[0] = opt.geomgroup[3] = 1  # the floor (group 0) and the robot's collision geoms (group 3)
    opt.sitegroup[:] = 0
    return opt


def _camera(mujoco, distance: float, azimuth: float, elevation: float):
    cam = mujoco.MjvCamera()
    cam.type = mujoco.mjtCamera.mjCAMERA_FREE
    cam.distance, cam.azimuth, cam.elevation = distance, azimuth, elevation
    return cam


def _add_grid(mujoco, scene, center_xy: np.ndarray) -> None:
    """Floor lines every metre within GRID_HALF_EXTENT_M of the tracked body (thin boxes)."""
    cx, cy = np.floor(center_xy)
    ext = GRID_HALF_EXTENT_M
    rgba = np.asarray(GRID_RGBA, dtype=np.float32)
    eye = np.eye(3).reshape(-1)
    for k in range(-ext, ext + 1):
        for pos, size in (
            ((cx + k, cy, 0.001), (0.006, ext, 0.001)),
            ((cx, cy + k, 0.001), (ext, 0.006, 0.001)),
        ):
            if scene.ngeom >= scene.maxgeom:
                return
            mujoco.mjv_initGeom(
                scene.geoms[scene.ngeom],
                mujoco.mjtGeom.mjGEOM_BOX,
                np.asarray(size),
                np.asarray(pos),
                eye,
                rgba,
            )
            scene.ngeom += 1


def _renderer(mujoco, model, width: int, height: int):
    try:
        return mujoco.Renderer(model, height=height, width=width)
    except Exception as e:
        backend = os.environ.get("MUJOCO_GL", "glfw")
        raise RuntimeError(
            f"offscreen rendering is unavailable (MUJOCO_GL={backend}: {type(e).__name__}: {e}); install "
            "Mesa's "
            "EGL (Debian: apt-get install libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libopengl0; `make "
            "setup` "
            "does it as root) or set MUJOCO_GL=osmesa with libosmesa6"
        ) from e


def render_frames(
    model,
    robot_qpos: np.ndarray,
    ref_qpos: np.ndarray,
    *,
    width: int = 480,
    height: int = 360,
    stride: int = 1,
    distance: float = 3.0,
    azimuth: float = 135.0,
    elevation: float = -15.0,
    track_body: str = "pelvis",
):
    """Yield (height, width, 3) uint8 frames, one per `stride` rows of the (T, nq) qpos arrays."""
    ensure_gl_backend()
    import mujoco

    robot_qpos, ref_qpos = np.asarray(robot_qpos), np.asarray(ref_qpos)
    if robot_qpos.ndim != 2 or robot_qpos.shape != ref_qpos.shape or robot_qpos.shape[1] != model.nq:
        raise ValueError(
            f"render: robot_qpos {robot_qpos.shape} and ref_qpos {ref_qpos.shape} must both be "
            f"(T, nq={model.nq})"
        )
    body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, track_body)
    if body < 0:
        raise ValueError(f"render: the model has no body {track_body!r} to track")
    model = copy.deepcopy(model)  # the visual settings below change only our copy
    # The offscreen buffer must hold the frame; a model built without <visual> settings has 640x480.
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    model.vis.headlight.ambient[:] = 0.45
    model.vis.headlight.diffuse[:] = 0.55
    robot, ref = mujoco.MjData(model), mujoco.MjData(model)
    opt, cam = _scene_options(mujoco), _camera(mujoco, distance, azimuth, elevation)
    pert = mujoco.MjvPerturb()
    with _renderer(mujoco, model, width, height) as renderer:
        scene = renderer.scene
        scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        for t in range(0, len(robot_qpos), max(1, int(stride))):
            robot.qpos[:], ref.qpos[:] = robot_qpos[t], ref_qpos[t]
            mujoco.mj_kinematics(model, robot)
            mujoco.mj_kinematics(model, ref)
            cam.lookat[:] = robot.xpos[body]
            renderer.update_scene(robot, camera=cam, scene_option=opt)
            first_ref = scene.ngeom
            for i in range(first_ref):
                if (
                    scene.geoms[i].objtype == mujoco.mjtObj.mjOBJ_GEOM
                    and scene.geoms[i].category == mujoco.mjtCatBit.mjCAT_DYNAMIC
                ):
                    scene.geoms[i].rgba[:] = ROBOT_RGBA
            mujoco.mjv_addGeoms(model, ref, opt, pert, mujoco.mjtCatBit.mjCAT_DYNAMIC, scene)
            for i in range(first_ref, scene.ngeom):
                scene.geoms[i].rgba[:] = REF_RGBA
            _add_grid(mujoco, scene, robot.xpos[body, :2])
            yield renderer.render()


def render_clip(
    model,
    robot_qpos: np.ndarray,
    ref_qpos: np.ndarray,
    out_path: str | Path,
    *,
    fps: float,
    width: int = 480,
    height: int = 360,
    stride: int = 1,
    **camera,
) -> Path:
    """Write an H.264 MP4 of the clip to `out_path` (atomically: a temp file renamed into place).

    robot_qpos, ref_qpos: (T, nq) qpos rows at `fps`; `stride` renders every stride-th row (the
    video plays at fps / stride, so its duration is the clip's). width/height should be multiples
    of 16 (H.264 macroblocks). Returns out_path."""
    import imageio.v2 as imageio

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.tmp{out_path.suffix or '.mp4'}")
    writer = imageio.get_writer(
        tmp,
        fps=float(fps) / max(1, int(stride)),
        codec="libx264",
        quality=7,
        pixelformat="yuv420p",
        macro_block_size=16,
        ffmpeg_log_level="error",
    )
    try:
        for frame in render_frames(
            model, robot_qpos, ref_qpos, width=width, height=height, stride=stride, **camera
        ):
            writer.append_data(frame)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    writer.close()
    os.replace(tmp, out_path)
    return out_path


def video_caption(row: dict) -> str:
    """The report's caption of a clip's video, from its metrics row."""
    outcome = "failed" if not row["success"] else "succeeded"
    return (
        f"{row['clip']} [{row['encoder']}]: {outcome} after {row['num_frames']}/{row['clip_frames']} frames, "
        f"MPJPE global {row['mpjpe_g_mm']:.0f} mm"
    )


def render_worst(
    model,
    worst: Sequence,
    videos_dir: str | Path,
    *,
    several_encoders: bool,
    width: int = 480,
    height: int = 352,
    stride: int = 1,
    on_video: Callable[[str, float], None] | None = None,
) -> dict[str, str]:
    """An MP4 per clip of `worst` (ClipTrajectory: row, robot_qpos, ref_qpos, fps) into videos_dir,
    named by `report.video_name`; returns {file name: caption}. on_video(name, seconds) after each.
    `sonic-ray eval` and `sonic-ray sim2sim` both render their worst clips here."""
    out = {}
    for tr in worst:
        r = tr.row
        name = video_name(r["clip"], r["encoder"], several_encoders=several_encoders)
        t0 = time.perf_counter()
        render_clip(
            model,
            tr.robot_qpos,
            tr.ref_qpos,
            Path(videos_dir) / name,
            fps=tr.fps,
            width=width,
            height=height,
            stride=stride,
        )
        out[name] = video_caption(r)
        if on_video is not None:
            on_video(name, time.perf_counter() - t0)
    return out
