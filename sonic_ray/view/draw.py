"""Scene pieces on a viser server: a robot as one mesh per body, marker sets, the ground grid.

`offset` (3,) is subtracted from every drawn position: with "follow" on, the pages pass the root's
ground position so the robot stays in view without moving the user's camera, and the grid shifts
by the offset modulo its cell so the floor still slides under a walking robot.
"""

from __future__ import annotations

import numpy as np

from sonic_ray.view.geometry import BodyMesh

ROBOT_RGB = (40, 110, 220)
GHOST_RGB = (255, 140, 30)
VR_RGB = (220, 30, 30)
SMPL_RGB = (30, 170, 60)
GRID_CELL = 0.5


class RobotDrawing:
    """Per-body meshes under `/name/<body>`; `set_pose` moves them all in one message batch."""

    def __init__(
        self, server, name: str, meshes: list[BodyMesh], *, color=ROBOT_RGB, opacity: float | None = None
    ):
        self.server = server
        self.handles = [
            server.scene.add_mesh_simple(
                f"/{name}/{m.body}",
                m.vertices,
                m.faces,
                color=color,
                opacity=opacity,
                cast_shadow=opacity is None,
                receive_shadow=opacity is None,
            )
            if len(m.faces)
            else None
            for m in meshes
        ]

    def set_pose(self, body_pos_w: np.ndarray, body_quat_w: np.ndarray, offset: np.ndarray) -> None:
        """body_pos_w (B,3), body_quat_w (B,4) wxyz in the meshes' body order."""
        for h, p, q in zip(self.handles, body_pos_w, body_quat_w):
            if h is not None:
                h.position, h.wxyz = p - offset, q

    def set_visible(self, visible: bool) -> None:
        for h in self.handles:
            if h is not None:
                h.visible = visible


class Markers:
    """A set of spheres (one icosphere each; a handful per frame, so no batching needed)."""

    def __init__(self, server, name: str, count: int, *, color, radius: float = 0.035):
        self.handles = [
            server.scene.add_icosphere(f"/{name}/{i}", radius=radius, color=color) for i in range(count)
        ]

    def set(self, points_w: np.ndarray | None, offset: np.ndarray, visible: bool = True) -> None:
        show = visible and points_w is not None
        for i, h in enumerate(self.handles):
            if show:
                h.position = points_w[i] - offset
            h.visible = show


class Ground:
    def __init__(self, server):
        self.grid = server.scene.add_grid(
            "/ground",
            width=20.0,
            height=20.0,
            cell_size=GRID_CELL,
            section_size=1.0,
            plane_color=(235, 235, 235),
            plane_opacity=1.0,
            shadow_opacity=0.2,
        )

    def follow(self, offset: np.ndarray) -> None:
        self.grid.position = (-(offset[0] % 1.0), -(offset[1] % 1.0), -0.001)


def follow_offset(root_pos_w: np.ndarray, on: bool) -> np.ndarray:
    """(3,) what to subtract from world positions: the root's ground point when following."""
    return np.array([root_pos_w[0], root_pos_w[1], 0.0]) if on else np.zeros(3)


def set_camera(server, *, distance: float = 3.2, height: float = 1.2) -> None:
    """The initial view for new clients: in front of and beside a robot standing at the origin."""
    server.initial_camera.position = (distance * 0.7, -distance * 0.7, height)
    server.initial_camera.look_at = (0.0, 0.0, 0.7)
