"""What sim2sim shares with `sonic-ray eval`: per-clip metrics, their summary (metrics.json), videos,
and the worst-first order of clips for videos.

STAND-IN, TO BE REPLACED AT MERGE: `sonic_ray.eval` (metrics.clip_metrics / summarize,
video.render_clip) is being written on another branch. Once it is on main this module re-exports
it and the fallbacks below are deleted; until then they keep the fixed interface with a minimal
subset of the metrics (success, global and root-relative MPJPE) so sim2sim runs and is tested.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

try:
    from sonic_ray.eval.metrics import clip_metrics, summarize
    from sonic_ray.eval.video import render_clip
except ModuleNotFoundError as e:
    if not (e.name or "").startswith("sonic_ray.eval"):
        raise

    def clip_metrics(robot_body_pos_w: np.ndarray, ref_body_pos_w: np.ndarray, *, fps: float, failed: bool,
                     body_names: Sequence[str], encoder: str = "g1") -> dict:
        """Stand-in: success, mpjpe_g_mm, mpjpe_l_mm (root = body 0), num_frames, encoder."""
        rob, ref = np.asarray(robot_body_pos_w, np.float64), np.asarray(ref_body_pos_w, np.float64)
        if rob.shape != ref.shape or rob.ndim != 3 or rob.shape[1] != len(body_names):
            raise ValueError(f"clip_metrics: robot {rob.shape} / reference {ref.shape} / {len(body_names)} names")
        err = lambda d: 1000.0 * float(np.linalg.norm(d, axis=-1).mean()) if d.size else math.nan  # noqa: E731
        return {"success": not failed, "mpjpe_g_mm": err(rob - ref),
                "mpjpe_l_mm": err((rob - rob[:, :1]) - (ref - ref[:, :1])), "num_frames": int(rob.shape[0]),
                "encoder": str(encoder)}

    def summarize(rows: list[dict]) -> dict:
        """Stand-in: success rate over all rows, errors averaged over successful rows."""
        ok = [r for r in rows if r["success"]]
        mean = lambda k: float(np.mean([r[k] for r in ok])) if ok else None  # noqa: E731
        return {"success_rate": float(np.mean([r["success"] for r in rows])) if rows else None,
                "mpjpe_g_mm": mean("mpjpe_g_mm"), "mpjpe_l_mm": mean("mpjpe_l_mm"),
                "num_clips": len(rows), "num_success": len(ok)}

    def render_clip(model, robot_qpos: np.ndarray, ref_qpos: np.ndarray, out_path, *, fps: float,
                    width: int = 480, height: int = 360) -> Path:
        """Stand-in: the robot alone from its tracking camera, H.264 MP4, written atomically."""
        import imageio.v2 as imageio
        import mujoco

        _offscreen_gl()
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.with_name(f".{out_path.stem}.tmp.mp4")
        data, opt = mujoco.MjData(model), mujoco.MjvOption()
        opt.geomgroup[3] = 1  # the robot's collision geoms
        writer = imageio.get_writer(tmp, fps=float(fps), codec="libx264", macro_block_size=16,
                                    ffmpeg_log_level="error")
        try:
            with mujoco.Renderer(model, height=height, width=width) as r:
                for q in np.asarray(robot_qpos):
                    data.qpos[:] = q
                    mujoco.mj_kinematics(model, data)
                    mujoco.mj_comPos(model, data)
                    mujoco.mj_camlight(model, data)  # the tracking camera follows the COM
                    r.update_scene(data, camera="tracking", scene_option=opt)
                    writer.append_data(r.render())
        finally:
            writer.close()
        os.replace(tmp, out_path)
        return out_path


    def _offscreen_gl() -> None:
        """Without a display, render through EGL (switching an already imported mujoco to it)."""
        if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
            os.environ["MUJOCO_GL"] = "egl"
        want = os.environ.get("MUJOCO_GL", "").lower()
        if want in ("egl", "osmesa"):
            import importlib

            from mujoco.rendering.classic import gl_context

            gl_context.GLContext = importlib.import_module(f"mujoco.{want}").GLContext


def worst_first(row: dict) -> tuple:
    """Sort key, worst clip first: failures, earlier failures first, then larger global MPJPE."""
    g = row.get("mpjpe_g_mm")
    g = 0.0 if g is None or not math.isfinite(float(g)) else float(g)
    return (bool(row["success"]), row.get("completed", 1.0) if not row["success"] else 0.0, -g)
