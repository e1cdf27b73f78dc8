"""Batched forward kinematics in torch, read from a compiled MjModel.

Why not `mj_kinematics`: motion libraries and rewards need body poses for thousands of frames or
envs at once, on the training device, without a round trip through MjData. The tree (parents,
body offsets, hinge axes and anchors) is read from the model, so an external MJCF of the same
robot works as well as ours. Same convention as MuJoCo: for a hinge, the child frame is the
parent frame, moved by the body offset, then rotated by (q - qpos0) about the axis through the
joint anchor. The op sequence is one function (`_fk_core`) run by TorchScript where it compiles
(`_FK_SCRIPTED`), without Python's dispatch of each of its hundreds of small ops, else as Python: the
same aten ops, so the same values.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import mujoco
import numpy as np
import torch

from sonic_ray.robots.spec import PointSpec, RobotSpec
from sonic_ray.utils.rotations import _MUL_IDX, _MUL_SIGN, quat_apply, quat_mul_terms, quat_normalize


# FK works on component-major tensors: (4 or 3, K bodies, R rows), rows innermost, so every op is a
# contiguous loop over the rows (a row-major (R, K, 4) layout makes each op loop over 3 or 4 values
# at a time). Measured, G1, one thread: 1,000 rows 6.9 -> 3.9 ms, 2,000 10.9 -> 5.6 ms, 20 rows
# unchanged (1.8 ms, dispatch-bound). The arithmetic per value is quat_mul's / quat_apply's.
def _quat_mul_c(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """quat_mul(a, b) of component-major (4, ...) quaternions, the same values bit for bit."""
    return quat_mul_terms(a, b, dim=0)


def _mul_terms_of(b: torch.Tensor) -> torch.Tensor:
    """(4, 4, ...) the factors `_quat_mul_const` multiplies a by, for a constant b (4, ...):
    quat_mul_terms' b[_MUL_IDX] * _MUL_SIGN, computed once."""
    sign = _MUL_SIGN.to(b.device, b.dtype).view(4, 4, *([1] * (b.dim() - 1)))
    return b.index_select(0, _MUL_IDX.to(b.device)).unflatten(0, (4, 4)) * sign


def _quat_mul_const(a: torch.Tensor, terms: torch.Tensor) -> torch.Tensor:
    """quat_mul(a, b) of component-major a (4, ...) and a constant b given as `_mul_terms_of(b)`:
    the same values bit for bit as `_quat_mul_c` (which multiplies a by b's term, then by the
    sign: a sign of +-1 is exact in either order, round to nearest being symmetric), in 8 ops
    instead of ~13."""
    p = a.unsqueeze(1) * terms
    ps = p.unbind(0)  # one op for the four rows (indexing p[i] costs one each)
    return ((ps[0] + ps[1]) + ps[2]) + ps[3]


_P1, _P2 = (
    torch.tensor([1, 2, 0]),
    torch.tensor([2, 0, 1]),
)  # cross: c[i] = a[P1[i]] b[P2[i]] - a[P2[i]] b[P1[i]]
_Q1, _Q2 = _P1 + 1, _P2 + 1  # the same on a quaternion's x, y, z
_CS_IDX = (_MUL_IDX > 0).long()  # quat_mul's term rows of a hinge rotation: 0 its cos, 1 its sin
_CROSS_MIN = (
    256  # values per component from which the cross products are elementwise ops (below: dispatch-bound)
)


def _quat_apply_c(
    q: torch.Tensor,
    v: torch.Tensor,
    v1: torch.Tensor | None,
    v2: torch.Tensor | None,
    idx: list[torch.Tensor],
    cross_min: int,
) -> torch.Tensor:
    """quat_apply(q, v) of component-major q (4, ...), v (3, ...): the same values bit for bit.
    torch.linalg.cross computes component i as fma(a[P1], b[P2], -(a[P2] * b[P1])) (checked against
    a float64 emulation: tests/robots/test_fk_batching.py), and torch.addcmul(x, a, b) is fma(a, b,
    x): for large batches the cross products are those elementwise ops (linalg.cross loops over the
    vectors one by one: ~17x a multiply's time at 4,000 vectors). v1, v2: v's components in the
    orders P1 and P2, for a constant v (computed once), else None. idx: _P1, _P2, _Q1, _Q2 on q's
    device (TorchScript compiles no global tensors)."""
    w, xyz = q[:1], q[1:]
    if xyz.numel() // 3 < cross_min:
        v = v.expand([3] + list(xyz.shape[1:]))
        t = 2.0 * torch.linalg.cross(xyz, v, dim=0)
        return v + w * t + torch.linalg.cross(xyz, t, dim=0)
    x1, nx2 = q.index_select(0, idx[2]), -q.index_select(0, idx[3])
    if v1 is None or v2 is None:
        v1, v2 = v.index_select(0, idx[0]), v.index_select(0, idx[1])
    t = 2.0 * torch.addcmul(nx2 * v1, x1, v2)
    return v + w * t + torch.addcmul(nx2 * t.index_select(0, idx[0]), x1, t.index_select(0, idx[1]))


def _fk_core(
    root_pos: torch.Tensor,
    root_quat: torch.Tensor,
    joints: torch.Tensor,
    nb: int,
    root: int,
    target: int,
    out: torch.Tensor,
    point_ids: list[torch.Tensor],
    point_offsets: list[torch.Tensor],
    idx: list[torch.Tensor],
    cross_min: int,
    parent_idx: list[torch.Tensor],
    id_idx: list[torch.Tensor],
    local_pos: list[torch.Tensor],
    local_pos1: list[torch.Tensor],
    local_pos2: list[torch.Tensor],
    local_quat_terms: list[torch.Tensor],
    hinge: list[bool],
    zero_anchor: list[bool],
    cols: list[torch.Tensor],
    q0: list[torch.Tensor],
    axis_terms: list[torch.Tensor],
    anchor: list[torch.Tensor],
) -> list[torch.Tensor]:
    """TorchFK's op sequence from the flat inputs (root_pos (R, 3), root_quat (R, 4) normalised,
    joints (J, R)) to its outputs: [pos (R, 3), quat (R, 4)] of model body `target` when >= 0, else
    [body_pos (R, B, 3), body_quat (R, B, 4), each point table's positions (R, P, 3)] of the output
    bodies `out` (B,). The levels come as parallel lists (`TorchFK._pack`; idx: _P1, _P2, _Q1, _Q2,
    _CS_IDX on the device). Written for TorchScript: the same aten ops whether scripted or run as
    Python (`_FK_SCRIPTED`), so the same values."""
    r = root_pos.shape[0]
    pos = torch.empty([3, nb, r], dtype=root_pos.dtype, device=root_pos.device)
    quat = torch.empty([4, nb, r], dtype=root_pos.dtype, device=root_pos.device)
    # component-major poses of every model body in one buffer each, (3 | 4, bodies, R): a level
    # reads its parents with one index_select and writes its bodies with one index_copy_ (copies:
    # the same values as a list of per-body rows stacked and unbound, in ~4 ops a level instead of
    # ~4 per body); the world at the origin
    pos[:, 0] = 0.0
    quat[:, 0] = 0.0
    quat[0, 0] = 1.0
    pos[:, root] = root_pos.T
    quat[:, root] = root_quat.T
    for i in range(len(parent_idx)):
        pp = pos.index_select(1, parent_idx[i])  # (3, K, R) the parents' poses
        pq = quat.index_select(1, parent_idx[i])
        bp = pp + _quat_apply_c(pq, local_pos[i], local_pos1[i], local_pos2[i], idx, cross_min)
        bq = _quat_mul_const(pq, local_quat_terms[i])
        if hinge[i]:
            angle = joints.index_select(0, cols[i]) - q0[i]  # (K, R)
            half = 0.5 * angle.unsqueeze(0)
            # the hinge rotation (cos, sin * axis) as quat_mul's signed terms: (cos | sin) *
            # (1 | axis component) * sign, the product (a sign of +-1 last or first: exact)
            cs = torch.cat((torch.cos(half), torch.sin(half)), dim=0)
            qloc = cs.index_select(0, idx[4]).unflatten(0, [4, 4]) * axis_terms[i]
            if zero_anchor[i]:
                # the joints sit at their bodies' origins (the G1's all do): for a finite
                # rotation, quat_apply(q, +0) is +0 exactly, so the two lines below reduce to
                # bp + 0.0 (the same bits, -0.0 turned +0.0 as there) in one op instead of ~30
                bq = _quat_mul_const(bq, qloc)
                bp = bp + 0.0
            else:
                xanchor = bp + _quat_apply_c(bq, anchor[i], None, None, idx, cross_min)
                bq = _quat_mul_const(bq, qloc)
                bp = xanchor - _quat_apply_c(bq, anchor[i], None, None, idx, cross_min)
        pos.index_copy_(1, id_idx[i], bp)
        quat.index_copy_(1, id_idx[i], bq)
    if target >= 0:
        return [pos[:, target].T, quat[:, target].T]
    res = [
        pos.index_select(1, out).permute(2, 1, 0).contiguous(),
        quat.index_select(1, out).permute(2, 1, 0).contiguous(),
    ]
    for j in range(len(point_ids)):
        rows = out.index_select(0, point_ids[j].to(out.device))
        pp = pos.index_select(1, rows)
        pq = quat.index_select(1, rows)
        offsets = point_offsets[j].to(device=pos.device, dtype=pos.dtype).T.unsqueeze(-1)
        p = pp + _quat_apply_c(pq, offsets, None, None, idx, cross_min)
        res.append(p.permute(2, 1, 0))
    return res


_FK_SCRIPTED = None  # set by _core(): _fk_core scripted (TorchScript), or False where scripting failed


def _core():
    """`_fk_core` compiled by TorchScript on first use (~0.1 s), else (TorchScript missing or
    failing) the Python function itself: the same aten ops either way, so the same values; the
    scripted one runs them without Python's per-op dispatch (~590 ops a G1 call with points).
    `_FK_SCRIPTED` says which is used."""
    global _FK_SCRIPTED
    if _FK_SCRIPTED is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script's own
                _FK_SCRIPTED = torch.jit.script(_fk_core)
        except Exception as e:  # noqa: BLE001 - any failure: the eager function
            warnings.warn(
                f"TorchFK: TorchScript unavailable ({type(e).__name__}: {e}); FK runs eagerly", stacklevel=3
            )
            _FK_SCRIPTED = False
    return _FK_SCRIPTED or _fk_core


_FREE = mujoco.mjtJoint.mjJNT_FREE
_HINGE = mujoco.mjtJoint.mjJNT_HINGE


class TorchFK:
    """Body poses in the world from root pose + joint positions.

    The joint_pos columns are the model's hinge joints in model order (for a model matched to a
    RobotSpec: the spec's joint order). Output bodies are the spec's bodies in spec order, or all
    bodies but the world when no spec is given.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        robot: RobotSpec | None = None,
        *,
        device="cpu",
        dtype: torch.dtype = torch.float32,
    ):
        self.device = torch.device(device)
        self.dtype = dtype
        self._parse_tree(model)
        if robot is not None:
            if tuple(self.joint_names) != tuple(robot.joint_names):
                bad = next(
                    (i for i, (a, b) in enumerate(zip(self.joint_names, robot.joint_names)) if a != b),
                    min(len(self.joint_names), len(robot.joint_names)),
                )
                raise ValueError(
                    f"TorchFK: the model's hinge joints differ from robot {robot.name!r} at #{bad}: "
                    f"model {list(self.joint_names)[bad : bad + 1]}, "
                    f"robot {list(robot.joint_names)[bad : bad + 1]}"
                )
            names = [model.body(i).name for i in range(model.nbody)]
            missing = [n for n in robot.body_names if n not in names]
            if missing:
                raise ValueError(f"TorchFK: the model lacks bodies of robot {robot.name!r}: {missing}")
            self.body_names = tuple(robot.body_names)
            out_ids = [names.index(n) for n in robot.body_names]
        else:
            self.body_names = tuple(model.body(i).name for i in range(1, model.nbody))
            out_ids = list(range(1, model.nbody))
        self._out_ids = out_ids
        self.robot = robot

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def num_bodies(self) -> int:
        return len(self.body_names)

    def _parse_tree(self, model: mujoco.MjModel) -> None:
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=self.dtype, device=self.device)  # noqa: E731
        self._parent = model.body_parentid.tolist()
        self._local_pos = t(model.body_pos)
        self._local_quat = t(model.body_quat)
        self._kind: list[str] = ["world"]
        self._hinge: dict[int, tuple[int, torch.Tensor, torch.Tensor, float]] = {}
        hinge_ids = [j for j in range(model.njnt) if model.jnt_type[j] == _HINGE]
        self.joint_names = tuple(model.joint(j).name for j in hinge_ids)
        col_of = {j: c for c, j in enumerate(hinge_ids)}
        free_seen = False
        for b in range(1, model.nbody):
            name = model.body(b).name
            n, adr = int(model.body_jntnum[b]), int(model.body_jntadr[b])
            types = [int(model.jnt_type[adr + k]) for k in range(n)]
            if types == [_FREE]:
                if free_seen:
                    raise ValueError(
                        f"TorchFK: body {name!r} has a second free joint; one floating root only"
                    )
                free_seen = True
                self._kind.append("root")
            elif types == [_HINGE]:
                self._kind.append("hinge")
                self._hinge[b] = (
                    col_of[adr],
                    t(model.jnt_axis[adr]),
                    t(model.jnt_pos[adr]),
                    float(model.qpos0[model.jnt_qposadr[adr]]),
                )
            elif not types:
                self._kind.append("fixed")
            else:
                raise ValueError(
                    f"TorchFK: body {name!r} has joints of types {types}; "
                    "supported are one free joint (root), one hinge, or none"
                )
        if not free_seen:
            raise ValueError("TorchFK: the model has no free joint (a floating-base robot is expected)")
        self._root = self._kind.index("root")
        self._levels: dict[str | None, list[dict]] = {}

    def forward(
        self,
        root_pos_w: torch.Tensor,
        root_quat_w: torch.Tensor,
        joint_pos: torch.Tensor,
        *,
        only: str | None = None,
        points: Sequence[tuple[torch.Tensor, torch.Tensor]] = (),
    ):
        """root_pos_w (..., 3), root_quat_w (..., 4) wxyz, joint_pos (..., J)
        -> body_pos_w (..., B, 3), body_quat_w (..., B, 4); with `only` (an output body's name) just
        that body's pose (..., 3), (..., 4), from its chain of parents alone (the same arithmetic,
        so the same values as the full call's). `points`: `point_table` pairs; their world
        positions (..., P, 3) follow the bodies' (the values `self.points` gives, computed here
        in FK's own layout).
        """
        if joint_pos.shape[-1] != self.num_joints:
            raise ValueError(
                f"TorchFK.forward: joint_pos has {joint_pos.shape[-1]} columns, expected {self.num_joints}"
            )
        kw = dict(device=self.device, dtype=self.dtype)
        root_pos_w, root_quat_w, joint_pos = (x.to(**kw) for x in (root_pos_w, root_quat_w, joint_pos))
        # numpy's broadcast_shapes: torch's imports torch.fx's symbolic shapes on first use (~0.6 s of
        # every process's start-up)
        batch = torch.Size(
            np.broadcast_shapes(root_pos_w.shape[:-1], root_quat_w.shape[:-1], joint_pos.shape[:-1])
        )
        r = batch.numel()
        rp = root_pos_w.expand(*batch, 3).reshape(r, 3)
        rq = quat_normalize(root_quat_w).expand(*batch, 4).reshape(r, 4)
        joints = joint_pos.expand(*batch, self.num_joints).reshape(r, -1).T  # (J, R)
        target = -1 if only is None else self._out_ids[self.body_names.index(only)]
        if target == self._root:
            # the root's own pose: what `_fk_core` copies into its buffers and back (the same
            # values; the light keys' anchor, once a step), without its ~15 ops
            return rp.clone().reshape(*batch, 3), rq.reshape(*batch, 4)
        device = rp.device
        out = self._out_idx(device)
        ids = [t[0] for t in points] if only is None else []
        offsets = [t[1] for t in points] if only is None else []
        # the op sequence scripted (`_FK_SCRIPTED`) or, where TorchScript is unavailable and inside
        # torch.compile, run as Python: the same ops
        args = (rp, rq, joints, len(self._kind), self._root, target, out, ids, offsets)
        pack = self._pack(only, device)
        # no levels (`only` the root: the light keys' anchor): a few ops, fewer than the scripted
        # call's argument conversion costs (~16 us)
        no_levels = not pack[2]  # pack[2]: the levels' parent indices
        core = _fk_core if torch.compiler.is_compiling() or no_levels else _core()
        if core is _fk_core:
            res = core(*args, *pack)
        else:
            # the plain interpreter: the graph executor's optimisations would fuse elementwise ops
            # on a GPU (other roundings) and specialise on the first calls' shapes (~60 ms)
            with torch.jit.optimized_execution(False):
                res = core(*args, *pack)
        if only is not None:
            return res[0].reshape(*batch, 3), res[1].reshape(*batch, 4)
        nb = len(self._out_ids)
        res[0], res[1] = res[0].reshape(*batch, nb, 3), res[1].reshape(*batch, nb, 4)
        for j, pid in enumerate(ids):
            res[2 + j] = res[2 + j].reshape(*batch, len(pid), 3)
        return tuple(res)

    __call__ = forward

    def _levels_of(self, only: str | None) -> list[dict]:
        """The bodies below the root grouped by depth and kind (one batch of tensor ops per group:
        10 groups instead of 29 bodies for the G1, the same arithmetic per body), cut to `only`'s
        chain when given; built once per `only`."""
        levels = self._levels.get(only)
        if levels is not None:
            return levels
        chain = None if only is None else self._chain(self._out_ids[self.body_names.index(only)])
        depth, groups = [0] * len(self._kind), {}
        for b in range(1, len(self._kind)):
            depth[b] = depth[self._parent[b]] + 1
            if self._kind[b] != "root" and (chain is None or b in chain):
                groups.setdefault((depth[b], self._kind[b]), []).append(b)
        levels = []
        for (_, kind), ids in sorted(groups.items()):
            rows = torch.tensor(ids, device=self.device)
            lv = {
                "kind": kind,
                "ids": ids,
                "parents": [self._parent[b] for b in ids],
                "parent_idx": torch.tensor([self._parent[b] for b in ids], device=self.device),
                "id_idx": rows,
                "local_pos": self._local_pos[rows].T.unsqueeze(-1).contiguous(),  # (3, K, 1)
                "local_quat": self._local_quat[rows].T.unsqueeze(-1).contiguous(),
            }
            lv["local_quat_terms"] = _mul_terms_of(lv["local_quat"])
            lv["local_pos12"] = (
                lv["local_pos"].index_select(0, _P1.to(self.device)),
                lv["local_pos"].index_select(0, _P2.to(self.device)),
            )
            if kind == "hinge":
                h = [self._hinge[b] for b in ids]
                lv["cols"] = torch.tensor([x[0] for x in h], device=self.device)
                lv["axis"] = torch.stack([x[1] for x in h]).T.unsqueeze(-1).contiguous()
                one = torch.ones_like(lv["axis"][:1])
                lv["axis_terms"] = _mul_terms_of(torch.cat((one, lv["axis"]), dim=0))  # (4, 4, K, 1)
                lv["anchor"] = torch.stack([x[2] for x in h]).T.unsqueeze(-1).contiguous()
                a = lv["anchor"].cpu().numpy()
                lv["zero_anchor"] = bool(np.all(a == 0.0) and not np.signbit(a).any())
                lv["q0"] = torch.tensor([x[3] for x in h], dtype=self.dtype, device=self.device)[:, None]
            levels.append(lv)
        self._levels[only] = levels
        return levels

    def _pack(self, only: str | None, device) -> tuple:
        """`_fk_core`'s level arguments for `only` on `device` (built once): the index constants and
        the levels of `_levels_of` as parallel lists (empty tensors where a fixed level has no
        hinge)."""
        packs = self.__dict__.setdefault("_packs", {})
        key = (only, str(device))
        pack = packs.get(key)
        if pack is not None:
            return pack
        d = lambda x: x.to(device)  # noqa: E731
        levels = self._levels_of(only)
        none = torch.empty(0, dtype=self.dtype, device=device)
        none_i = torch.empty(0, dtype=torch.long, device=device)
        hinge = [lv["kind"] == "hinge" for lv in levels]
        pack = (
            [d(_P1), d(_P2), d(_Q1), d(_Q2), d(_CS_IDX)],
            _CROSS_MIN,
            [d(lv["parent_idx"]) for lv in levels],
            [d(lv["id_idx"]) for lv in levels],
            [d(lv["local_pos"]) for lv in levels],
            [d(lv["local_pos12"][0]) for lv in levels],
            [d(lv["local_pos12"][1]) for lv in levels],
            [d(lv["local_quat_terms"]) for lv in levels],
            hinge,
            [h and lv["zero_anchor"] for h, lv in zip(hinge, levels)],
            [d(lv["cols"]) if h else none_i for h, lv in zip(hinge, levels)],
            [d(lv["q0"]) if h else none for h, lv in zip(hinge, levels)],
            [d(lv["axis_terms"]) if h else none for h, lv in zip(hinge, levels)],
            [d(lv["anchor"]) if h else none for h, lv in zip(hinge, levels)],
        )
        packs[key] = pack
        return pack

    def _out_idx(self, device) -> torch.Tensor:
        """(B,) the output bodies' model ids, as a tensor on `device` (built once)."""
        idx = getattr(self, "_out_t", None)
        if idx is None or idx.device != device:
            idx = self._out_t = torch.tensor(self._out_ids, device=device)
        return idx

    def _chain(self, body: int) -> set[int]:
        """Model body ids from `body` up to the world."""
        out = set()
        while body > 0:
            out.add(body)
            body = self._parent[body]
        return out

    def point_table(self, points: Sequence[PointSpec]) -> tuple[torch.Tensor, torch.Tensor]:
        """(P,) output-body indices and (P, 3) offsets for named points."""
        try:
            ids = [self.body_names.index(p.body) for p in points]
        except ValueError:
            bad = next(p for p in points if p.body not in self.body_names)
            raise KeyError(f"TorchFK: point {bad.name!r} is on unknown body {bad.body!r}") from None
        offsets = torch.tensor([list(p.offset) for p in points], dtype=self.dtype, device=self.device)
        return torch.tensor(ids, dtype=torch.long, device=self.device), offsets.reshape(-1, 3)

    def points(self, body_pos_w: torch.Tensor, body_quat_w: torch.Tensor, points) -> torch.Tensor:
        """World positions (..., P, 3) of points fixed to bodies.

        body_pos_w (..., B, 3), body_quat_w (..., B, 4) from `forward`; points is a sequence of
        PointSpec or a `(body_ids (P,), offsets (P, 3))` pair from `point_table`.
        """
        if isinstance(points, tuple) and len(points) == 2 and torch.is_tensor(points[0]):
            ids, offsets = points
        else:
            ids, offsets = self.point_table(points)
        ids = ids.to(body_pos_w.device)
        offsets = offsets.to(device=body_pos_w.device, dtype=body_pos_w.dtype)
        q = body_quat_w[..., ids, :]
        return body_pos_w[..., ids, :] + quat_apply(q, offsets.expand(*q.shape[:-1], 3))
