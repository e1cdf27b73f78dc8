"""`sonic-ray view motions STORE`: the page that replays stored clips kinematically.

Controls (right panel): search + clip list, play/pause, frame slider, speed, loop, follow, and
which markers to show (VR 3-point targets, SMPL joints). The status block shows frame, time,
root height and the joints past their limits on this frame. `status()` is the same state for
scripts and tests. GUI callbacks run on viser's threads and the play loop on the main thread, so
every change goes through one lock.
"""

from __future__ import annotations

import threading

import numpy as np

from sonic_ray.view import draw
from sonic_ray.view.geometry import body_meshes
from sonic_ray.view.replay import SPEEDS, ClipPoses, MotionStore, Playback, Poser, search

MAX_LISTED = 500  # clips in the dropdown at once; the search narrows a larger store


def listed(names: list[str], query: str, current: str) -> list[str]:
    """The clip list for a search: the matches (at most MAX_LISTED), with the clip shown now first
    when it does not match, so the list always holds the selected value and picking a match is a
    change the page reports (a list without it would make viser select the first match itself)."""
    found = search(names, query)[:MAX_LISTED]
    return found if current in found else [current, *found]


class MotionsApp:
    def __init__(self, server, store: MotionStore, poser: Poser, *, clip: str | None = None):
        self.server, self.store, self.poser = server, store, poser
        self.lock = threading.RLock()
        robot = poser.spec
        draw.set_camera(server)
        self.ground = draw.Ground(server)
        self.robot = draw.RobotDrawing(server, "robot", body_meshes(poser.model, robot.body_names))
        self.vr = draw.Markers(server, "vr_targets", len(robot.vr_points), color=draw.VR_RGB)
        self.smpl = draw.Markers(server, "smpl_joints", 24, color=draw.SMPL_RGB, radius=0.025)
        first = clip or store.names[0]
        store.index(first)  # an unknown --clip fails here, naming the store
        self._build_gui(first)
        self.select(first)

    # ---- GUI ------------------------------------------------------------------------------------
    def _build_gui(self, first: str) -> None:
        gui = self.server.gui
        gui.add_markdown(f"**{self.store.path.name}**: {len(self.store.names)} clips")
        self.search = gui.add_text("Search", "", hint="words that the clip name contains")
        self.clip_list = gui.add_dropdown("Clip", listed(self.store.names, "", first), initial_value=first)
        self.play_button = gui.add_button("Pause", icon=None)
        self.frame_slider = gui.add_slider("Frame", min=0, max=1, step=1, initial_value=0)
        self.speed = gui.add_dropdown("Speed", [f"{s:g}x" for s in SPEEDS], initial_value="1x")
        self.loop = gui.add_checkbox("Loop", True)
        self.follow = gui.add_checkbox("Follow the robot", True)
        self.show_vr = gui.add_checkbox("VR 3-point targets", True)
        self.show_smpl = gui.add_checkbox("SMPL joints", True)
        self.info = gui.add_markdown("")

        @self.search.on_update
        def _(event) -> None:
            self.clip_list.options = listed(self.store.names, self.search.value, self.clip_list.value)

        @self.clip_list.on_update
        def _(event) -> None:
            if event.client is not None and self.clip_list.value != self.status()["clip"]:
                self.select(self.clip_list.value)

        @self.play_button.on_click
        def _(event) -> None:
            self.toggle_play()

        @self.frame_slider.on_update
        def _(event) -> None:
            if event.client is not None:
                with self.lock:
                    self.playback.seek(int(self.frame_slider.value))
                    self._show()

        @self.speed.on_update
        def _(event) -> None:
            with self.lock:
                self.playback.speed = float(self.speed.value.rstrip("x"))

        @self.loop.on_update
        def _(event) -> None:
            with self.lock:
                self.playback.loop = bool(self.loop.value)

        for box in (self.follow, self.show_vr, self.show_smpl):
            box.on_update(lambda _event: self._show_locked())

    # ---- actions --------------------------------------------------------------------------------
    def select(self, name: str) -> None:
        """Show clip `name` from its first frame (ClipNotFound for a name the store lacks)."""
        poses = self.poser.pose(self.store.read(name))
        with self.lock:
            self.poses: ClipPoses = poses
            playing = getattr(self, "playback", None) is None or self.playback.playing
            self.playback = Playback(
                poses.num_frames,
                poses.fps,
                playing=playing,
                speed=float(self.speed.value.rstrip("x")),
                loop=bool(self.loop.value),
            )
            self.frame_slider.max = max(1, poses.num_frames - 1)
            if name not in self.clip_list.options:
                self.clip_list.options = listed(self.store.names, self.search.value, name)
            self.clip_list.value = name
            self.smpl_note = "" if poses.smpl_joints is not None else " (this clip stores none)"
            self._show()

    def toggle_play(self) -> None:
        with self.lock:
            pb = self.playback
            if not pb.playing and pb.frame >= pb.num_frames - 1:
                pb.seek(0)  # play again from the start after a non-looping end
            pb.playing = not pb.playing
            self._show()

    def tick(self, dt: float) -> None:
        with self.lock:
            if self.playback.playing:
                self.playback.advance(dt)
                self._show()

    # ---- drawing --------------------------------------------------------------------------------
    def _show_locked(self) -> None:
        with self.lock:
            self._show()

    def _show(self) -> None:
        p, f = self.poses, self.playback.frame
        offset = draw.follow_offset(p.body_pos_w[f, 0], bool(self.follow.value))
        with self.server.atomic():
            self.robot.set_pose(p.body_pos_w[f], p.body_quat_w[f], offset)
            self.vr.set(p.vr_pos_w[f], offset, bool(self.show_vr.value))
            self.smpl.set(
                None if p.smpl_joints is None else p.smpl_joints[f], offset, bool(self.show_smpl.value)
            )
            self.ground.follow(offset)
            self.frame_slider.value = f
            self.play_button.label = "Pause" if self.playback.playing else "Play"
            self.info.content = self._info_text()

    def _info_text(self) -> str:
        s = self.status()
        bad = s["limit_violations"]
        lines = [
            f"**{s['clip']}**",
            f"frame {s['frame']} / {s['num_frames'] - 1} at {s['fps']:g} fps, "
            f"t = {s['time_s']:.2f} s of {s['duration_s']:.2f} s",
            f"root height {s['root_height_m']:.3f} m",
            f"joint-limit violations: {len(bad)}"
            + "".join(f"\n- {j}: {v:+.3f} rad" for j, v in bad[:8])
            + ("\n- ..." if len(bad) > 8 else ""),
            f"SMPL joints{self.smpl_note}",
        ]
        return "\n\n".join(lines)

    def status(self) -> dict:
        """What the page shows now (clip, frame, time, play state, root height, violations)."""
        with self.lock:
            p, pb = self.poses, self.playback
            f = pb.frame
            return {
                "clip": p.name,
                "frame": f,
                "num_frames": p.num_frames,
                "fps": p.fps,
                "time_s": f / p.fps,
                "duration_s": p.duration_s,
                "playing": pb.playing,
                "speed": pb.speed,
                "loop": pb.loop,
                "root_height_m": float(p.root_height[f]),
                "limit_violations": list(p.violations[f]),
                "has_smpl": p.smpl_joints is not None,
                "root_pos_w": np.asarray(p.body_pos_w[f, 0]).tolist(),
            }
