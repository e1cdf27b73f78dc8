"""The reference as a per-env window of frames: memory N x W rows whatever the shard's size.

`CachedReference` computes a whole clip when an env starts it, so a reset costs the clip's length
in FK rows and the arena must hold every clip in use (N x clip length). `WindowReference` keeps,
for each of the N envs, only W consecutive control-rate frames of its clip starting at the frame
the env was at when the window was filled. Before each gather `MotionCommand` calls
`row_base(clip, frame, reach)`: envs whose window does not hold frames frame .. frame + reach
(the future frames the observations read, held at the clip's last frame), or holds another clip,
get a new window starting at `frame`, all of them in one batched `reference_frames` call (the
function the full table is built with). In steady state an env refills every W - reach steps, so
a step computes about N (W + 2) / (W - reach) rows plus W + 2 for each reset env.

Exactness: each window is computed as a run of frames extended by one frame each side (where the
clip has one), so the finite-difference body velocities of its inner frames are the full table's
central (or, at clip ends, one-sided) differences; the root and joint states come from a
`MotionLib` over the whole clips (cheap: no FK), queried as the table queries it. Rows equal the
table's bit for bit (tests/envs/test_window_reference.py).

Interface: `data` (N x W rows per key), `row_base`, `clip_frames`, `store_index`, `fps`,
`body_names`, `num_clips`, `num_frames`, `nbytes`, `ensure` (no-op). It has no `clip_start`: rows
belong to envs, not clips, so a learner rebuilding observations by (clip, frame) uses the clip
arena (`CachedReference`) instead. One WindowReference serves one MotionCommand (its N is fixed by
the first `row_base` call).
"""

from __future__ import annotations

import torch

from sonic_ray.envs.cached_reference import RawShard
from sonic_ray.envs.reference import FramePoints, reference_frames
from sonic_ray.motion.frames import control_rate_frames
from sonic_ray.motion.motion_lib import MotionLib


class WindowReference:
    """Per-env windows of `window_frames` reference rows over a RawShard's clips."""

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
        device="cpu",
    ):
        if int(window_frames) < 2:
            raise ValueError(f"motions.window_frames: {window_frames}, expected >= 2")
        self.raw, self.fk, self.device = raw, fk, torch.device(device)
        self.fps = float(control_fps)
        self.window_frames = int(window_frames)
        self.points = FramePoints(fk, anchor_body=anchor_body, vr_points=vr_points, smpl_points=smpl_points)
        self.kwargs = dict(
            control_fps=control_fps,
            anchor_body=anchor_body,
            vr_points=vr_points,
            smpl_points=smpl_points,
            window_frames=window_frames,
            device=device,
        )
        frames = control_rate_frames(raw.frames, raw.fps, self.fps)
        self.clip_frames = torch.as_tensor(frames, device=self.device)
        self.store_index = torch.as_tensor(raw.store_index)
        self.body_names = tuple(fk.body_names)
        self.data: dict[str, torch.Tensor] = {}
        self.win_clip = self.win_start = None  # (N,) long once sized: -1 for an empty window
        self.rows_computed = 0  # frames computed so far (window rows plus their edge frames)

    def fresh(self) -> WindowReference:
        """Another WindowReference over the same raw shard and FK (for another MotionCommand)."""
        return WindowReference(self.raw, self.fk, **self.kwargs)

    @property
    def num_clips(self) -> int:
        return int(self.clip_frames.shape[0])

    @property
    def num_frames(self) -> int:
        """Control-rate frames of the shard (what the full table would hold)."""
        return int(self.clip_frames.sum())

    def nbytes(self) -> int:
        return sum(v.numel() * v.element_size() for v in self.data.values())

    def ensure(self, clips: torch.Tensor) -> None:
        """Nothing to do per clip: windows are filled by `row_base`."""

    def row_base(self, clip: torch.Tensor, frame: torch.Tensor, reach: int) -> torch.Tensor:
        """(N,) row such that env n reads frame f of clip[n] at row base[n] + f, for every f in
        [frame[n], min(frame[n] + reach, last frame)]; refills the windows that do not hold them."""
        n, w = int(clip.shape[0]), self.window_frames
        if reach >= w:
            raise ValueError(
                f"motions.window_frames: {w} frames, but the observations read {reach} frames ahead; "
                f"set it above {reach}"
            )
        if self.win_clip is None:
            self._allocate(n)
        elif n != self.win_clip.shape[0]:
            raise ValueError(f"WindowReference: sized for {self.win_clip.shape[0]} envs, called with {n}")
        last = self.clip_frames[clip] - 1
        stale = (
            (self.win_clip != clip)
            | (frame < self.win_start)
            | (torch.minimum(frame + reach, last) >= self.win_start + w)
        )
        ids = torch.nonzero(stale).squeeze(-1)
        if len(ids):
            self._fill(ids, clip[ids], frame[ids])
        return torch.arange(n, device=self.device) * w - self.win_start

    def _allocate(self, n: int) -> None:
        """Row shapes from one computed frame, then N x W rows per key."""
        probe = self._compute(torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.long))[0]
        self.data = {
            k: torch.zeros((n * self.window_frames, *v.shape[1:]), dtype=v.dtype, device=self.device)
            for k, v in probe.items()
        }
        self.win_clip = torch.full((n,), -1, dtype=torch.long, device=self.device)
        self.win_start = torch.zeros(n, dtype=torch.long, device=self.device)

    def _fill(self, ids: torch.Tensor, clip: torch.Tensor, start: torch.Tensor) -> None:
        """Windows of envs ids (E,) := frames start .. start + W - 1 (within the clip) of clip (E,)."""
        rows, count = self._compute(clip, start)
        w = self.window_frames
        dst = torch.repeat_interleave(ids * w, count) + _ramp(count)
        for k, v in rows.items():
            self.data[k].index_copy_(0, dst, v)
        self.win_clip[ids], self.win_start[ids] = clip, start

    def _compute(self, clip: torch.Tensor, start: torch.Tensor) -> tuple[dict, torch.Tensor]:
        """Rows of frames start .. start + W - 1 of clip (E,), cut at the clip's end, concatenated
        (sum count rows), and count (E,). Computed as runs one frame wider each side where the clip
        goes on, so the finite differences at the window's edges are the clip's central ones."""
        length = self.clip_frames[clip].cpu()
        start = start.cpu()
        count = torch.minimum(length - start, torch.tensor(self.window_frames))
        lo = torch.clamp(start - 1, min=0)
        hi = torch.minimum(start + count, length - 1)  # inclusive: one past the window if it exists
        run = hi - lo + 1
        uniq, local_clip = torch.unique(clip.cpu(), return_inverse=True)
        lib = MotionLib.from_clips(
            [self.raw.clip(int(c)) for c in uniq], control_fps=self.fps, store_index=self.store_index[uniq]
        )
        frame = torch.repeat_interleave(lo, run) + _ramp(run)
        rows = reference_frames(
            lib, self.points, torch.repeat_interleave(local_clip, run), frame, run.numpy(), device=self.device
        )
        # the window's own rows: skip the leading edge frame (when there is one), keep count rows
        keep = torch.repeat_interleave(torch.cumsum(run, 0) - run + (start - lo), count) + _ramp(count)
        self.rows_computed += int(run.sum())
        keep = keep.to(self.device)
        return {k: v.index_select(0, keep) for k, v in rows.items()}, count.to(self.device)


def _ramp(count: torch.Tensor) -> torch.Tensor:
    """(sum count,) 0 .. count[i] - 1 for each i, concatenated."""
    total = int(count.sum())
    offsets = torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
    return torch.arange(total, device=count.device) - offsets
