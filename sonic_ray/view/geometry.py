"""The robot's shape for the viewer: the MjModel's own geoms (capsules, spheres, boxes), merged
into one triangle mesh per body in that body's frame. Posing the robot is then one (position,
quaternion) per body, which is what FK (`sonic_ray.robots.TorchFK`) and MuJoCo (`xpos`/`xquat`)
give; no second kinematics, no meshes other than the model's."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import mujoco
import numpy as np

_GT = mujoco.mjtGeom


@dataclass
class BodyMesh:
    """One body's geoms as a mesh in the body frame: vertices (V,3) float32, faces (F,3) uint32."""

    body: str
    vertices: np.ndarray
    faces: np.ndarray


def _quat_to_mat(q: np.ndarray) -> np.ndarray:
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, np.asarray(q, dtype=np.float64))
    return m.reshape(3, 3)


def geom_mesh(geom_type: int, size: np.ndarray):
    """(vertices, faces) of one primitive geom, centred, MuJoCo's axes (capsule along z)."""
    return _geom_mesh(int(geom_type), tuple(float(x) for x in size[:3]))


@functools.lru_cache(maxsize=256)
def _geom_mesh(geom_type: int, size: tuple[float, ...]):
    import trimesh

    if geom_type == _GT.mjGEOM_SPHERE:
        m = trimesh.creation.icosphere(subdivisions=2, radius=float(size[0]))
    elif geom_type == _GT.mjGEOM_CAPSULE:
        m = trimesh.creation.capsule(height=2.0 * float(size[1]), radius=float(size[0]), count=[12, 12])
        m.apply_translation(-m.bounds.mean(axis=0))  # centred whatever trimesh's convention
    elif geom_type == _GT.mjGEOM_BOX:
        m = trimesh.creation.box(extents=2.0 * np.asarray(size[:3], dtype=np.float64))
    elif geom_type == _GT.mjGEOM_CYLINDER:
        m = trimesh.creation.cylinder(radius=float(size[0]), height=2.0 * float(size[1]), sections=16)
    else:
        raise ValueError(
            f"geom type {mujoco.mjtGeom(geom_type).name} is not drawn by the viewer "
            "(capsule, sphere, box, cylinder are)"
        )
    return np.asarray(m.vertices, dtype=np.float64), np.asarray(m.faces, dtype=np.int64)


def body_meshes(model: mujoco.MjModel, body_names) -> list[BodyMesh]:
    """One BodyMesh per name in `body_names` (the robot table's order), from the model's geoms
    attached to that body, each placed by its geom_pos / geom_quat. A body without geoms gets an
    empty mesh (nothing is drawn for it)."""
    out = []
    for name in body_names:
        b = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
        if b < 0:
            raise KeyError(f"the model has no body {name!r}")
        verts, faces, n = [], [], 0
        for g in np.flatnonzero(model.geom_bodyid == b):
            v, f = geom_mesh(int(model.geom_type[g]), model.geom_size[g])
            verts.append(v @ _quat_to_mat(model.geom_quat[g]).T + model.geom_pos[g])
            faces.append(f + n)
            n += len(v)
        out.append(
            BodyMesh(
                name,
                np.concatenate(verts).astype(np.float32) if verts else np.zeros((0, 3), np.float32),
                np.concatenate(faces).astype(np.uint32) if faces else np.zeros((0, 3), np.uint32),
            )
        )
    return out


def posed_vertices(mesh: BodyMesh, pos_w: np.ndarray, quat_w: np.ndarray) -> np.ndarray:
    """(V,3) the mesh's vertices in the world for a body pose (pos (3,), quat (4,) wxyz)."""
    return mesh.vertices.astype(np.float64) @ _quat_to_mat(quat_w).T + np.asarray(pos_w, dtype=np.float64)
