"""`sonic-ray view policy`: the page that runs a policy live in MuJoCo (CPU) beside its reference.

The robot is drawn solid, the reference as a translucent ghost; with the teleop encoder the VR
3-point targets it reads are drawn too. Controls: clip (with search), encoder (the policy's
encoders: g1, teleop, smpl), pause/run, push (a random root velocity, the training push's
ranges), reset, follow. The status block shows the step, the tracking error of this step, the
evaluation terminations that would fire now and the first step one did. The loop runs on the main
thread at the policy's control rate (slower if the CPU cannot keep up); GUI callbacks share a lock.
"""

from __future__ import annotations

import threading

import numpy as np

from sonic_ray.view import draw
from sonic_ray.view.geometry import body_meshes
from sonic_ray.view.motions_app import listed
from sonic_ray.view.session import PolicySession


class PolicyApp:
    def __init__(self, server, session: PolicySession, *, title: str):
        self.server, self.session, self.title = server, session, title
        self.lock = threading.RLock()
        self.running, self.steps, self.pushes = True, 0, 0
        meshes = body_meshes(session.sim.model, session.sim.body_names)
        draw.set_camera(server)
        self.ground = draw.Ground(server)
        self.robot = draw.RobotDrawing(server, "robot", meshes)
        self.ghost = draw.RobotDrawing(server, "reference", meshes, color=draw.GHOST_RGB, opacity=0.35)
        self.vr = draw.Markers(server, "vr_targets", len(session.meta["vr_points"]), color=draw.VR_RGB)
        self._build_gui()
        self._show()

    def _build_gui(self) -> None:
        gui, s = self.server.gui, self.session
        gui.add_markdown(f"**{self.title}**")
        self.search = gui.add_text("Search", "", hint="words that the clip name contains")
        self.clip_list = gui.add_dropdown("Clip", listed(s.clip_names, "", s.clip), initial_value=s.clip)
        self.encoder = gui.add_dropdown("Encoder", list(s.policies), initial_value=s.encoder)
        self.run_button = gui.add_button("Pause")
        self.push_button = gui.add_button("Push")
        self.reset_button = gui.add_button("Reset")
        self.follow = gui.add_checkbox("Follow the robot", True)
        self.show_ghost = gui.add_checkbox("Reference ghost", True)
        self.info = gui.add_markdown("")

        @self.search.on_update
        def _(event) -> None:
            self.clip_list.options = listed(s.clip_names, self.search.value, s.clip)

        @self.clip_list.on_update
        def _(event) -> None:
            if event.client is not None and self.clip_list.value != s.clip:
                self.select(self.clip_list.value)

        @self.encoder.on_update
        def _(event) -> None:
            if event.client is not None:
                with self.lock:
                    s.set_encoder(self.encoder.value)
                    self._show()

        self.run_button.on_click(lambda _e: self.toggle_run())
        self.push_button.on_click(lambda _e: self.push())
        self.reset_button.on_click(lambda _e: self.reset())
        for box in (self.follow, self.show_ghost):
            box.on_update(lambda _e: self._show_locked())

    # ---- actions --------------------------------------------------------------------------------
    def select(self, clip: str) -> None:
        with self.lock:
            self.session.select_clip(clip)
            if clip not in self.clip_list.options:
                self.clip_list.options = listed(self.session.clip_names, self.search.value, clip)
            self.clip_list.value = clip
            self._show()

    def toggle_run(self) -> None:
        with self.lock:
            self.running = not self.running
            self._show()

    def push(self) -> np.ndarray:
        with self.lock:
            self.pushes += 1
            return self.session.push()

    def reset(self) -> None:
        with self.lock:
            self.session.reset()
            self._show()

    def tick(self, dt: float) -> None:
        with self.lock:
            if self.running:
                self.session.step()
                self.steps += 1
                self._show()

    # ---- drawing --------------------------------------------------------------------------------
    def _show_locked(self) -> None:
        with self.lock:
            self._show()

    def _show(self) -> None:
        s = self.session
        rob_p, rob_q = s.robot_pose()
        ref_p, ref_q = s.reference_pose()
        offset = draw.follow_offset(rob_p[0], bool(self.follow.value))
        with self.server.atomic():
            self.robot.set_pose(rob_p, rob_q, offset)
            self.ghost.set_pose(ref_p, ref_q, offset)
            self.ghost.set_visible(bool(self.show_ghost.value))
            self.vr.set(s.vr_targets(), offset, s.encoder == "teleop")
            self.ground.follow(offset)
            self.run_button.label = "Pause" if self.running else "Run"
            self.info.content = self._info_text()

    def _info_text(self) -> str:
        st = self.status()
        fail = ", ".join(st["failures"]) or "none"
        first = st["first_failure"]
        first_txt = "none yet" if first is None else f"{first[1]} at step {first[0]}"
        return "\n\n".join(
            [
                f"**{st['clip']}** with the **{st['encoder']}** encoder",
                f"step {st['frame']} / {st['num_frames'] - 1} ({'running' if st['running'] else 'paused'})",
                f"tracking error: {st['error_mm']:.1f} mm (root-relative {st['error_local_mm']:.1f} mm)",
                f"terminations firing now: {fail}",
                f"first termination this episode: {first_txt}",
                f"root height {st['root_height_m']:.3f} m",
            ]
        )

    def status(self) -> dict:
        """What the page shows now (clip, encoder, step, errors, terminations, run state)."""
        with self.lock:
            s, r = self.session, self.session.last
            return {
                "clip": s.clip,
                "encoder": s.encoder,
                "encoders": list(s.policies),
                "frame": r.frame,
                "num_frames": r.num_frames,
                "error_mm": r.error_mm,
                "error_local_mm": r.error_local_mm,
                "failures": list(r.failures),
                "first_failure": r.first_failure,
                "running": self.running,
                "steps": self.steps,
                "pushes": self.pushes,
                "root_height_m": float(s.sim.data.qpos[2]),
                "root_pos_w": s.sim.data.qpos[:3].tolist(),
            }
