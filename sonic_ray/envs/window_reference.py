"""The reference as a per-env window of frames: memory N x W rows whatever the shard's size.

`CachedReference` computes a whole clip when an env starts it, so a reset costs the clip's length
in FK rows and the arena must hold every clip in use (N x clip length). `WindowReference` keeps,
for each of the N envs, W consecutive control-rate frames of its clip starting at the frame the
env was at when the window was filled. Of those, the first `full_frames` (Wf) hold every key;
the rest hold only the LIGHT_KEYS (root, joints, anchor orientation: no full FK, a fraction of a
full frame's cost), which is all the long horizon reads (the g1 future frames: joint positions and
velocities, anchor orientation). Before each gather `MotionCommand` calls
`row_base(clip, frame, reach, full_reach)`: envs whose window does not hold frames
frame .. frame + reach (held at the clip's last frame), or every key of frames
frame .. frame + full_reach, or holds another clip, get a new window starting at `frame`, all of
them in one batched call of the functions the full table is built with. An env refills every
min(W - reach, Wf - full_reach) steps, so a step computes about N / that many windows plus one
for each reset env: Wf + 2 full frames and W - Wf light ones each.

Why two parts: resets dominate (a zero-action bench resets ~18% of the envs each step), and a
reset must compute every frame its observations read at once (45 frames ahead for the default g1
horizon); only the 10-frame SMPL horizon and the current frame read full-FK keys.

Exactness: the full part is computed as a run of frames extended by one frame each side (where the
clip has one), so the finite-difference body velocities of its frames are the full table's
central (or, at clip ends, one-sided) differences; the root and joint states come from a
`MotionLib` over just the frames the refill reads (`MotionLib.from_segments`: the same resampling
and differences per frame as over whole clips), queried once for both parts as the table queries
it. Rows equal the table's bit for bit (tests/envs/test_window_reference.py).

Interface: `data` (N x W rows per key), `row_base`, `light_keys`, `clip_frames`, `store_index`,
`fps`, `body_names`, `num_clips`, `num_frames`, `nbytes`, `ensure` (no-op). It has no `clip_start`:
rows belong to envs, not clips, so a learner rebuilding observations by (clip, frame) uses the
clip arena (`CachedReference`) instead. One WindowReference serves one MotionCommand (its N is
fixed by the first `row_base` call).
"""

from __future__ import annotations

import numpy as np
import torch

from sonic_ray.envs.cached_reference import OnDemandReference, RawShard
from sonic_ray.envs.reference import LIGHT_KEYS, FramePoints, frame_state, light_frames, reference_frames
from sonic_ray.motion.frames import control_rate_frames
from sonic_ray.motion.motion_lib import MotionLib


class WindowReference(OnDemandReference):
    """Per-env windows of `window_frames` rows (the first `full_frames` with every key) over a
    RawShard's clips."""

    light_keys = frozenset(LIGHT_KEYS)

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
        full_frames: int = 20,
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
        self.data: dict[str, torch.Tensor] = {}
        self.win_clip = self.win_start = None  # (N,) long once sized: -1 for an empty window
        self.rows_computed = 0  # full frames computed so far (window rows plus their edge frames)
        self.light_rows_computed = 0

    def fresh(self) -> WindowReference:
        """Another WindowReference over the same raw shard and FK (for another MotionCommand)."""
        return WindowReference(self.raw, self.fk, **self.kwargs)

    def ensure(self, clips: torch.Tensor) -> None:
        """Nothing to do per clip: windows are filled by `row_base`."""

    def row_base(
        self, clip: torch.Tensor, frame: torch.Tensor, reach: int, full_reach: int, ahead: int = 0
    ) -> torch.Tensor:
        """(N,) row such that env n reads frame f of clip[n] at row base[n] + f: the LIGHT_KEYS for
        every f in [frame[n], frame[n] + reach], every key for f in [frame[n], frame[n] + full_reach]
        (both held at the clip's last frame); refills the windows that do not hold them, or would
        not after `ahead` more steps (so the refills of the next step ride on this call: one FK
        call a step, its Python overhead paid once)."""
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
        last = self.clip_frames[clip] - 1
        stale = (
            (self.win_clip != clip)
            | (frame < self.win_start)
            | (torch.minimum(frame + (ahead + reach), last) >= self.win_start + w)
            | (torch.minimum(frame + (ahead + full_reach), last) >= self.win_start + wf)
        )
        ids = torch.nonzero(stale).squeeze(-1)
        if len(ids):
            self._fill(ids, clip[ids], frame[ids])
        return torch.arange(n, device=self.device) * w - self.win_start

    def _allocate(self, n: int) -> None:
        """Row shapes from one computed frame, then N x W rows per key, plus one scratch row (the
        full part's edge frames are written there: one copy per key, no select)."""
        lib = MotionLib.from_segments(self.raw, [0], [0], [1], control_fps=self.fps)
        zero = torch.zeros(1, dtype=torch.long)
        probe = reference_frames(lib, self.points, zero, zero, [1], device=self.device)
        rows = n * self.window_frames
        self._rows = {
            k: torch.zeros((rows + 1, *v.shape[1:]), dtype=v.dtype, device=self.device)
            for k, v in probe.items()
        }
        self.data = {k: v[:rows] for k, v in self._rows.items()}
        self.win_clip = torch.full((n,), -1, dtype=torch.long, device=self.device)
        self.win_start = torch.zeros(n, dtype=torch.long, device=self.device)

    def _fill(self, ids: torch.Tensor, clip: torch.Tensor, start: torch.Tensor) -> None:
        """Windows of envs ids (E,) := frames start .. start + W - 1 (within the clip) of clip (E,):
        every key on the first Wf of them, the LIGHT_KEYS on the rest. One state query for both
        parts (a MotionLib over just the frames they read), FK of the full part, the anchor's chain
        for the light part, one copy per key into the windows."""
        w, wf, scratch = self.window_frames, self.full_frames, len(self.win_clip) * self.window_frames
        clip_np, start_np = clip.cpu().numpy(), start.cpu().numpy()
        length = self._length[clip_np]
        n_full = np.minimum(length - start_np, wf)
        n_all = np.minimum(length - start_np, w)
        n_light = n_all - n_full
        # full part: runs one frame wider each side where the clip goes on (exact edge velocities)
        lo = np.maximum(start_np - 1, 0)
        hi = np.minimum(start_np + n_full, length - 1)  # inclusive: one past the part if it exists
        run = hi - lo + 1
        last = np.maximum(hi, start_np + n_all - 1)
        lib = MotionLib.from_segments(self.raw, clip_np, lo, last - lo + 1, control_fps=self.fps)
        e = np.arange(len(clip_np))
        n_run, n_lt = int(run.sum()), int(n_light.sum())
        st = frame_state(
            lib,
            np.concatenate((np.repeat(e, run), np.repeat(e, n_light))),
            np.concatenate(
                (np.repeat(lo, run) + _ramp(run), np.repeat(start_np + n_full, n_light) + _ramp(n_light))
            ),
        )
        full = reference_frames(
            lib, self.points, None, None, run, device=self.device, state={k: v[:n_run] for k, v in st.items()}
        )
        # destination rows: a run's frames in their env's window, its edge frames on the scratch row
        ids_np = ids.cpu().numpy()
        pos = np.repeat(lo - start_np, run) + _ramp(run)  # frame - start
        dst_full = np.where(
            (pos >= 0) & (pos < np.repeat(n_full, run)), np.repeat(ids_np * w, run) + pos, scratch
        )
        dst_light = np.repeat(ids_np * w + n_full, n_light) + _ramp(n_light)
        both = torch.as_tensor(np.concatenate((dst_full, dst_light)), device=self.device)
        dst_full = torch.as_tensor(dst_full, device=self.device)
        for k, v in full.items():
            if k in st:  # the state keys: full and light rows in one copy
                self._rows[k].index_copy_(0, both, st[k].to(self.device))
            else:
                self._rows[k].index_copy_(0, dst_full, v)
        if n_lt:
            light = light_frames(
                lib, self.points, None, None, device=self.device, state={k: v[n_run:] for k, v in st.items()}
            )
            self._rows["anchor_quat_w"].index_copy_(
                0, torch.as_tensor(dst_light, device=self.device), light["anchor_quat_w"]
            )
        self.rows_computed += n_run
        self.light_rows_computed += n_lt
        self.win_clip[ids], self.win_start[ids] = clip, start.to(self.device)


def _ramp(count: np.ndarray) -> np.ndarray:
    """(sum count,) 0 .. count[i] - 1 for each i, concatenated."""
    return np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
