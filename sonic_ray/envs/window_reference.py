"""The reference as a per-env window of frames: memory N x W rows whatever the shard's size.

`CachedReference` computes a whole clip when an env starts it, so a reset costs the clip's length
in FK rows and the arena must hold every clip in use (N x clip length). `WindowReference` keeps,
for each of the N envs, W consecutive control-rate frames of its clip starting at the frame the
env was at when the window was filled, one row base per env (env n reads frame f of its clip at
row base[n] + f, every key). The keys are filled in three parts, each as far ahead as it is read:

- LIGHT_KEYS (root, joints, anchor orientation: no full FK), on all W frames when the window is
  filled: what the long horizon reads (the g1 future frames, 45 ahead by default).
- pose keys (FK of the bodies, VR and SMPL points, SMPL joints in their root frame): up to
  `full_reach` frames ahead (the SMPL horizon, 9), computed lazily, `full_frames` (Wf) frames from
  the env's frame at a time and appended to the window (each frame once per window).
- frame keys (body velocities, VR points in the anchor frame): only at the env's frame (and the
  next one when `ahead`), since only the current frame reads them; a body velocity is the
  finite difference of the neighbouring frames' poses, read from the window's rows.

Before each gather `MotionCommand` calls `row_base(clip, frame, reach, full_reach, ahead)`: envs
whose window does not hold frames frame .. frame + ahead + reach (held at the clip's last frame),
or holds another clip, get a new window starting at `frame`; the others get the pose or frame
keys they miss; all in one batched call (one state query, one FK call) of the functions the full
table is built with. A new window of the same clip starting inside the old one (an env walking
past its window's end, every W - reach steps) keeps what the old one computed: its rows from
`frame` on move to the window's start (one copy per key) and only the frames past the old end
are computed (without the move such a refill recomputed ~46 light and ~13 pose frames). Why
lazily: resets dominate (a zero-action bench resets ~18% of the envs each step) and a reset must
have every frame its first observation reads at once; computing the pose and velocity keys only
as far as they are read cuts a reset's FK rows from 22 to Wf + 1 and its velocity frames from 20
to 2.

Exactness: the root and joint states come from a `MotionLib` over just the frames a new window
reads (`MotionLib.from_segments`: the same resampling and differences per frame as over whole
clips), queried as the table queries it; FK of a frame reads those states (from the query or
from the window's rows, the same values); a velocity reads the poses of its frame's neighbours
(central inside a clip, one-sided at its ends, as `clip_velocity`), the frame before a window's
first one kept on an edge row per env. Rows equal the table's bit for bit
(tests/envs/test_window_reference.py).

Interface: `data` (N x W rows per key; the N edge rows are kept apart), `row_base`,
`light_keys` (readable up to `reach`), `frame_keys` (readable at offset 0 only), `clip_frames`,
`store_index`, `fps`, `body_names`, `num_clips`, `num_frames`, `nbytes`, `ensure` (no-op). It has
no `clip_start`: rows belong to envs, not clips, so a learner rebuilding observations by (clip,
frame) uses the clip arena (`CachedReference`) instead. One WindowReference serves one
MotionCommand (its N is fixed by the first `row_base` call).
"""

from __future__ import annotations

import numpy as np
import torch

from sonic_ray.envs.cached_reference import OnDemandReference, RawShard
from sonic_ray.envs.reference import LIGHT_KEYS, FramePoints, light_frames, reference_frames
from sonic_ray.motion import lib_core
from sonic_ray.motion.frames import _rate, control_rate_frames, smpl_joints_local, vr_local
from sonic_ray.motion.motion_lib import MotionLib, segment_state

FRAME_KEYS = ("body_lin_vel_w", "body_ang_vel_w", "vr_pos_local", "vr_ori_local")
SMPL_KEYS = ("smpl_joints_w", "smpl_joints_local")
FK_INPUT_KEYS = ("root_pos_w", "root_quat_w", "joint_pos")


class WindowReference(OnDemandReference):
    """Per-env windows of `window_frames` rows over a RawShard's clips: LIGHT_KEYS on all of them,
    the pose keys `full_frames` ahead at a time, the frame keys at the env's frame."""

    frame_keys = frozenset(FRAME_KEYS)

    def __init__(
        self,
        raw: RawShard,
        fk,
        *,
        control_fps: float,
        anchor_body: str,
        vr_points,
        smpl_points,
        window_frames: int = 64,
        full_frames: int = 12,
        device="cpu",
    ):
        if not 1 <= int(full_frames) <= int(window_frames):
            raise ValueError(
                f"motions.window_full_frames: {full_frames}, expected 1 .. motions.window_frames "
                f"({window_frames})"
            )
        self.raw, self.fk, self.device = raw, fk, torch.device(device)
        self.fps = float(control_fps)
        self.window_frames, self.full_frames = int(window_frames), int(full_frames)
        self.points = FramePoints(fk, anchor_body=anchor_body, vr_points=vr_points, smpl_points=smpl_points)
        self.kwargs = dict(
            control_fps=control_fps,
            anchor_body=anchor_body,
            vr_points=vr_points,
            smpl_points=smpl_points,
            window_frames=window_frames,
            full_frames=full_frames,
            device=device,
        )
        frames = control_rate_frames(raw.frames, raw.fps, self.fps)
        self.clip_frames = torch.as_tensor(frames, device=self.device)
        self._length = np.asarray(frames, dtype=np.int64)
        self.store_index = torch.as_tensor(raw.store_index)
        self.body_names = tuple(fk.body_names)
        # the store's SMPL joints are state: then the SMPL keys are light (no FK), else FK points
        self.smpl_in_state = "smpl_joints" in raw.arrays
        self.light_keys = frozenset(LIGHT_KEYS + (SMPL_KEYS if self.smpl_in_state else ()))
        self.data: dict[str, torch.Tensor] = {}
        # (N,) long CPU tensors once sized (over numpy arrays: `_clip`, `_start`, `_pose_end`,
        # `_frame_end`): each env's clip (-1 for an empty window), first frame, and the ends
        # (exclusive) of the frames holding the pose keys and the frame keys
        self.win_clip = self.win_start = self.pose_end = self.frame_end = None
        self.rows_computed = 0  # FK frames computed so far (pose frames and edge frames)
        self.light_rows_computed = 0
        self.frame_rows_computed = 0  # frames whose velocities and VR local frames were computed
        self.moved_windows = 0  # new windows that kept their old ones' rows (`_move`)

    def fresh(self) -> WindowReference:
        """Another WindowReference over the same raw shard and FK (for another MotionCommand)."""
        return WindowReference(self.raw, self.fk, **self.kwargs)

    def ensure(self, clips: torch.Tensor) -> None:
        """Nothing to do per clip: windows are filled by `row_base`."""

    def row_base(
        self, clip: torch.Tensor, frame: torch.Tensor, reach: int, full_reach: int, ahead: int = 0
    ) -> torch.Tensor:
        """(N,) row such that env n reads frame f of clip[n] at row base[n] + f: the light keys for
        every f in [frame[n], frame[n] + reach], the pose keys for f in [frame[n], frame[n] +
        full_reach], the frame keys at frame[n] (all held at the clip's last frame); fills what is
        missing, also for frame + `ahead` (so the refills of the next step ride on this call: one
        FK call a step, its Python overhead paid once)."""
        n, w, wf = int(clip.shape[0]), self.window_frames, self.full_frames
        for key, need, have in (("window_frames", reach, w), ("window_full_frames", full_reach, wf)):
            if need >= have:
                raise ValueError(
                    f"motions.{key}: {have} frames, but the observations read {need} frames ahead; "
                    f"set it above {need}"
                )
        if self.win_clip is None:
            self._allocate(n)
        elif n != self.win_clip.shape[0]:
            raise ValueError(f"WindowReference: sized for {self.win_clip.shape[0]} envs, called with {n}")
        # the bookkeeping in numpy: (N,) arrays of a few hundred values, where each torch op costs
        # its dispatch (~20 ops twice a step)
        clip, frame = clip.cpu().numpy(), frame.cpu().numpy()
        last = self._length[clip] - 1
        # a velocity reads the next frame's pose: poses at least one frame ahead
        pose_need = np.minimum(frame + (ahead + max(full_reach, 1)), last)
        end = self._start + w
        new = (
            (self._clip != clip)
            | (frame < self._start)
            | (np.minimum(frame + (ahead + reach), last) >= end)
            | (pose_need >= end)
        )
        frame_need = np.minimum(frame + ahead, last)
        todo = new | (pose_need >= self._pose_end) | (frame_need >= self._frame_end)
        if todo.any():
            self._fill(todo, new, clip, frame, pose_need, frame_need)
        return torch.as_tensor(self._row0 - self._start, device=self.device)

    def _allocate(self, n: int) -> None:
        """Row shapes from one computed frame, then N x W rows per key and N edge rows (each env's
        poses of the frame before its window's first)."""
        lib = MotionLib.from_segments(self.raw, [0], [0], [1], control_fps=self.fps)
        zero = torch.zeros(1, dtype=torch.long)
        probe = reference_frames(lib, self.points, zero, zero, [1], device=self.device)
        parts = set(self.light_keys) | set(FRAME_KEYS)
        self.pose_keys = tuple(k for k in probe if k not in parts)
        rows = n * self.window_frames
        self._rows = {
            k: torch.zeros((rows + n, *v.shape[1:]), dtype=v.dtype, device=self.device)
            for k, v in probe.items()
        }
        self.data = {k: v[:rows] for k, v in self._rows.items()}
        self._row0 = np.arange(n, dtype=np.int64) * self.window_frames
        self._clip = np.full(n, -1, dtype=np.int64)
        self._start, self._pose_end, self._frame_end = (np.zeros(n, dtype=np.int64) for _ in range(3))
        # (N,) long CPU tensors over the same memory (what tests read)
        t = torch.from_numpy
        self.win_clip, self.win_start = t(self._clip), t(self._start)
        self.pose_end, self.frame_end = t(self._pose_end), t(self._frame_end)

    def _fill(self, todo, new, clip, frame, pose_need, frame_need) -> None:
        """Envs `todo` (N,) bool: new windows (`new`) get the light keys of frames frame ..
        frame + W - 1 (within the clip); every env in todo gets the pose keys up to pose_need and
        the frame keys up to frame_need (N,) it misses (all numpy). A new window of the clip the
        env's window holds, starting inside it (an env walking past its window's end), keeps what
        the old one computed: those rows move to the new window's start (a copy per key), and only
        the frames past the old end are computed. One state query, one FK call, one copy per key."""
        w = self.window_frames
        ids = np.flatnonzero(todo)
        is_new = new[ids]
        clip_np, frame_np = clip[ids], frame[ids]
        length = self._length[clip_np]
        old_start, old_pose_end, old_frame_end = self._start[ids], self._pose_end[ids], self._frame_end[ids]
        # moved: a new window over the old one's frames from `frame` on (poses held there and at the
        # frame before, which becomes the edge row)
        moved = (
            is_new
            & (self._clip[ids] == clip_np)
            & (frame_np > old_start)
            & (frame_np < old_start + w)
            & (frame_np <= old_pose_end)
        )
        fresh = is_new & ~moved
        if moved.any():
            m = moved
            self._move(ids[m], old_start[m], frame_np[m], length[m], old_pose_end[m], old_frame_end[m])
        start = np.where(is_new, frame_np, old_start)
        pose_end = np.where(fresh, frame_np, old_pose_end)
        # pose frames [p0, p1): from the window's held end, Wf frames from the env's frame or to
        # what is needed now, within the clip and the window
        p0 = pose_end
        p1 = np.minimum(
            np.minimum(np.maximum(frame_np + self.full_frames, pose_need[ids] + 1), length), start + w
        )
        p1 = np.maximum(p1, p0)
        base = ids * w - start  # row of frame f: base + f
        # light frames: a fresh window's all (within the clip), a moved one's past the old end
        light_first = np.where(fresh, frame_np, np.minimum(old_start + w, length))
        light_count = np.where(is_new, np.maximum(np.minimum(frame_np + w, length) - light_first, 0), 0)
        lit = light_count > 0
        fk_in, dst, n_fk = self._light_part(
            ids[lit],
            clip_np[lit],
            light_first[lit],
            light_count[lit],
            start[lit],
            np.where(fresh, p1 - frame_np, 0)[lit],
            (fresh & (frame_np > 0))[lit],
        )
        old = ~fresh
        n_old = p1[old] - p0[old]
        if n_old.sum():  # poses appended to a held window: its states from the window's rows
            rows = torch.as_tensor(np.repeat(base[old] + p0[old], n_old) + _ramp(n_old), device=self.device)
            for k in FK_INPUT_KEYS:
                fk_in[k].append(self.data[k].index_select(0, rows))
            dst.append(rows)
            n_fk += int(n_old.sum())
        if n_fk:
            self._pose_part({k: torch.cat(v) for k, v in fk_in.items()}, torch.cat(dst))
        self.rows_computed += n_fk
        # frame keys: frames [f0, f1] (f0 the frame, or after what the window holds)
        f0 = np.where(fresh, frame_np, np.maximum(old_frame_end, frame_np))
        # (a velocity reads the next frame's pose: only frames whose next one is held)
        f1 = np.minimum(frame_need[ids], np.where(p1 >= length, length - 1, p1 - 2))
        count = np.maximum(f1 - f0 + 1, 0)
        if count.sum():
            self._frame_part(
                np.repeat(ids, count), np.repeat(f0, count) + _ramp(count), start, ids, length, count
            )
        self._clip[ids], self._start[ids], self._pose_end[ids] = clip_np, start, p1
        self._frame_end[ids] = np.maximum(f1 + 1, f0)

    def _move(self, ids, old_start, frame, length, pose_end, frame_end) -> None:
        """Envs ids (E,) whose new windows start at `frame` (E,) inside their old ones (from
        old_start (E,)): the rows the old windows hold from `frame` on (light keys to the old end
        or the clip's, pose keys to pose_end, frame keys to frame_end, (E,) each) copied to the
        new windows' rows (row ids * W + f - frame), and the poses of frame - 1 to the edge rows."""
        w, n_env = self.window_frames, len(self._clip)
        src0, dst0 = ids * w - old_start, ids * w - frame  # row of frame f: base + f
        parts = (
            (tuple(self.light_keys), np.minimum(old_start + w, length), False),
            (self.pose_keys, pose_end, True),
            (FRAME_KEYS, frame_end, False),
        )
        for keys, end, edge in parts:
            count = np.maximum(end - frame, 0)
            ramp = _ramp(count)
            src = np.repeat(src0 + frame, count) + ramp
            dst = np.repeat(dst0 + frame, count) + ramp
            if edge:
                src, dst = np.concatenate((src, src0 + frame - 1)), np.concatenate((dst, w * n_env + ids))
            if not len(src):
                continue
            src, dst = torch.as_tensor(src, device=self.device), torch.as_tensor(dst, device=self.device)
            for k in keys:  # (the copy is taken before the write: overlapping rows are safe)
                self._rows[k].index_copy_(0, dst, self._rows[k].index_select(0, src))
        self.moved_windows += len(ids)

    def _light_part(self, ids, clip, first, count, start, n_pose, edge):
        """Windows of envs ids (E,) over `clip` (E,) starting at `start` (E,): the light keys of
        frames first .. first + count - 1 (E,) written; returns the FK inputs (state keys) of the
        first n_pose (E,) of those frames and, where `edge` (E,), of the frame before `first` (the
        edge row), their destination rows and count."""
        fk_in: dict[str, list[torch.Tensor]] = {k: [] for k in FK_INPUT_KEYS}
        dst: list[torch.Tensor] = []
        if not len(ids):
            return fk_in, dst, 0
        w, n_env = self.window_frames, len(self.win_clip)
        lo = first - edge
        e = np.arange(len(ids))
        n_lt = int(count.sum())
        # frame_state of a MotionLib.from_segments over these frames, in one call
        st = segment_state(
            self.raw,
            clip,
            lo,
            first + count - lo,
            np.concatenate((np.repeat(e, count), e[edge])),
            np.concatenate((np.repeat(first, count) + _ramp(count), first[edge] - 1)),
            control_fps=self.fps,
        )
        light = light_frames(
            None, self.points, None, None, device=self.device, state={k: v[:n_lt] for k, v in st.items()}
        )
        if self.smpl_in_state:
            light["smpl_joints_w"] = st["smpl_joints"][:n_lt].to(self.device)
            light["smpl_joints_local"] = smpl_joints_local(light["smpl_joints_w"], light["root_quat_w"])
        row0 = ids * w - start + first  # each window's row of frame `first`
        rows = torch.as_tensor(np.repeat(row0, count) + _ramp(count), device=self.device)
        for k, v in light.items():
            self._rows[k].index_copy_(0, rows, v)
        self.light_rows_computed += n_lt
        # pose frames: the first n_pose of each window's light frames, then the edge frames
        sel = torch.as_tensor(
            np.concatenate(
                (np.repeat(np.cumsum(count) - count, n_pose) + _ramp(n_pose), n_lt + np.arange(edge.sum()))
            )
        )
        for k in FK_INPUT_KEYS:
            fk_in[k].append(st[k].index_select(0, sel).to(self.device))
        dst.append(
            torch.as_tensor(
                np.concatenate((np.repeat(row0, n_pose) + _ramp(n_pose), w * n_env + ids[edge])),
                device=self.device,
            )
        )
        return fk_in, dst, int(n_pose.sum() + edge.sum())

    def _pose_part(self, st: dict[str, torch.Tensor], rows: torch.Tensor) -> None:
        """FK of states `st` (S rows of FK_INPUT_KEYS), its pose keys written to `rows` (S,)."""
        p = self.points
        tables = (p.vr_table,) if self.smpl_in_state else (p.vr_table, p.smpl_table)
        bp, bq, vr_pos, *smpl = self.fk.forward(
            st["root_pos_w"], st["root_quat_w"], st["joint_pos"], points=tables
        )
        out = {
            "body_pos_w": bp,
            "body_quat_w": bq,
            "vr_pos_w": vr_pos,
            "vr_quat_w": bq[:, p.vr_table[0].to(bq.device)],
        }
        if not self.smpl_in_state:
            out["smpl_joints_w"] = smpl[0]
            out["smpl_joints_local"] = smpl_joints_local(smpl[0], st["root_quat_w"])
        for k in self.pose_keys:
            self._rows[k].index_copy_(0, rows, out[k].to(self.device, torch.float32))

    def _frame_part(self, env, f, start, ids, length, count) -> None:
        """Frame keys of frames f (S,) of envs env (S,): body velocities from the poses of each
        frame's neighbours (the frame before a window's first on the env's edge row), VR points in
        the anchor frame from the frame's poses."""
        w, n_env = self.window_frames, len(self.win_clip)
        start_of = np.repeat(start, count)
        last = np.repeat(length, count) - 1
        prev, nxt = np.maximum(f - 1, 0), np.minimum(f + 1, last)
        here = env * w + f - start_of
        prev_row = np.where(prev >= start_of, env * w + prev - start_of, w * n_env + env)
        t = lambda a: torch.as_tensor(a, device=self.device)  # noqa: E731
        here, prev_row, nxt_row = t(here), t(prev_row), t(env * w + nxt - start_of)
        pos, quat = self._rows["body_pos_w"], self._rows["body_quat_w"]
        # velocity_between / angular_velocity_between of the neighbours' rows, written to `here`
        # (one TorchScript call: lib_core's functions, the same values)
        lib_core.run(
            lib_core.frame_velocities_core,
            pos,
            quat,
            nxt_row,
            prev_row,
            here,
            _rate(nxt - prev, self.fps, pos),
            *lib_core.consts(pos.dtype, pos.device),
            self._rows["body_lin_vel_w"],
            self._rows["body_ang_vel_w"],
        )
        a = self.points.anchor
        out = {}
        out["vr_pos_local"], out["vr_ori_local"] = vr_local(
            pos[:, a].index_select(0, here),  # the anchor's rows alone
            quat[:, a].index_select(0, here),
            self._rows["vr_pos_w"].index_select(0, here),
            self._rows["vr_quat_w"].index_select(0, here),
        )
        for k, v in out.items():
            self._rows[k].index_copy_(0, here, v)
        self.frame_rows_computed += len(f)


def _ramp(count: np.ndarray) -> np.ndarray:
    """(sum count,) 0 .. count[i] - 1 for each i, concatenated."""
    return np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
