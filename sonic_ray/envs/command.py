"""The motion command: which clip and frame each env follows, and the reference quantities the
MDP terms read.

Time is kept in whole control-rate frames: the env steps at the rate the ReferenceTable was
resampled to, so each step's reference is one gather, never an interpolation. Order within a
step (mjlab/BeyondMimic): the observation shows frame f, the action is rewarded and checked
against frame f once physics has run, then the command advances to f + 1.

Future frames: horizon "g1" is num_future_frames frames spaced future_dt apart, horizon "smpl"
is smpl_num_future_frames spaced smpl_future_dt; both start at the current frame (offset 0) and
are held at the clip's last frame.
"""

from __future__ import annotations

import torch

from sonic_ray.envs.reference import STATE_KEYS
from sonic_ray.models import keys as K
from sonic_ray.utils.rotations import (
    quat_apply,
    quat_conj,
    quat_from_rpy,
    quat_mul,
    quat_to_matrix,
    yaw_quat,
)

LOWER_BODY_JOINT_KEYWORDS = ("hip", "knee", "ankle")
RESET_NOISE_KEYS = (
    "root_pos_xy",
    "root_pos_z",
    "root_roll_pitch",
    "root_yaw",
    "root_lin_vel_xy",
    "root_lin_vel_z",
    "root_ang_vel_roll_pitch",
    "root_ang_vel_yaw",
    "joint_pos",
)
REF_HEIGHT_EMA = 0.1  # gear_sonic's running_ref_root_height weight per step


def lower_body_joint_ids(joint_names) -> list[int]:
    """Indices of the leg joints (names with hip, knee or ankle): the teleop encoder's command."""
    return [i for i, n in enumerate(joint_names) if any(k in n for k in LOWER_BODY_JOINT_KEYWORDS)]


def future_frame_offsets(n: int, dt: float, fps: float) -> torch.Tensor:
    """(n,) long frame offsets of n future frames every dt seconds in a motion at fps."""
    return torch.round(torch.arange(n, dtype=torch.float64) * dt * fps).long()


_YAW_MUL_SIGN = torch.tensor((-1.0, -1.0, 1.0, 1.0))
_YAW_MUL_SWAP = torch.tensor((3, 2, 1, 0))


def _yaw_mul(yaw_q: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """quat_mul(yaw_q, q) for yaw_q = (c, 0, 0, s) (N,1,4), q (N,B,4): the product's zero terms
    dropped, (c qw - s qz, c qx - s qy, c qy + s qx, c qz + s qw), the same values as quat_mul's
    for finite inputs in 5 tensor ops instead of ~30."""
    c, s = yaw_q[..., :1], yaw_q[..., 3:]
    sign, swap = _YAW_MUL_SIGN.to(q.device, q.dtype), _YAW_MUL_SWAP.to(q.device)
    return c * q + (s * sign) * q.index_select(-1, swap)


def _take(table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """table[rows] for integer rows of any shape (the table's first dim indexed): one index_select,
    2-3x faster than advanced indexing for the small gathers of a step (measured: (64,10) rows of
    a (T,30,3) table, 73 -> 21 us)."""
    return table.index_select(0, rows.reshape(-1)).view(*rows.shape, *table.shape[1:])


def future_rows(
    base: torch.Tensor, frame: torch.Tensor, last_frame: torch.Tensor, offsets: torch.Tensor
) -> torch.Tensor:
    """(M, F) table rows of the F future frames `offsets` (F,) after frame (M,), held at
    last_frame (M,), frame f being at row base (M,) + f: what both MotionCommand and ReferenceView
    gather."""
    f = torch.minimum(frame[:, None] + offsets, last_frame[:, None])
    return base[:, None] + f


class ReferenceView:
    """The reference quantities the observation terms read, at explicit (clip, frame) rows and a
    given robot anchor: what a learner needs to rebuild the reference-derived observations of a
    compact rollout (ppo/compact.py) from its own copy of the motions, with the terms' own code.

    clip, frame (M,) long (local clip rows of `table`), robot_anchor_pos_w (M,3),
    robot_anchor_quat_w (M,4). Same gathers as MotionCommand.update_reference / future, so the
    terms return the values the env computed bit for bit.
    """

    def __init__(
        self,
        table,
        *,
        clip: torch.Tensor,
        frame: torch.Tensor,
        robot_anchor_pos_w: torch.Tensor,
        robot_anchor_quat_w: torch.Tensor,
        anchor_index: int,
        horizons: dict[str, torch.Tensor],
        lower_body_joint_ids: torch.Tensor,
    ):
        self.table, self.clip, self.frame = table, clip, frame
        self.last_frame = table.clip_frames[clip] - 1
        self.horizons, self.lower_body_joint_ids = horizons, lower_body_joint_ids
        self.robot_anchor_pos_w, self.robot_anchor_quat_w = robot_anchor_pos_w, robot_anchor_quat_w
        self.robot_anchor_rot_w = quat_to_matrix(robot_anchor_quat_w)
        self.base = table.clip_start[clip]
        g = self.base + frame
        d = table.data
        for key in ("vr_pos_local", "vr_ori_local"):
            setattr(self, "ref_" + key, d[key].index_select(0, g))
        self.ref_anchor_pos_w = d["body_pos_w"].index_select(0, g)[:, anchor_index]
        self.ref_anchor_quat_w = d["body_quat_w"].index_select(0, g)[:, anchor_index]
        self._rows: dict[str, torch.Tensor] = {}

    def future(self, key: str, horizon: str = "g1") -> torch.Tensor:
        rows = self._rows.get(horizon)
        if rows is None:
            rows = self._rows[horizon] = future_rows(
                self.base, self.frame, self.last_frame, self.horizons[horizon]
            )
        return _take(self.table.data[key], rows)


def robot_anchor_rot(cmd) -> torch.Tensor:
    """(N,3,3) robot anchor rotation matrix of a MotionCommand (computed once per step) or of any
    object with robot_anchor_quat_w (tests' stand-ins: computed here)."""
    rot = getattr(cmd, "robot_anchor_rot_w", None)
    return quat_to_matrix(cmd.robot_anchor_quat_w) if rot is None else rot


class MotionCommand:
    """Per-env clip, frame and encoder; reference state at the current frame (N = num_envs).

    After `update_reference()` and `set_robot(state)`: ref_* (N,·) reference at the current frame,
    robot_anchor_* from the simulator, and ref_body_pos_rel_w / ref_body_quat_rel_w: the
    reference bodies re-anchored onto the robot (anchor xy from the robot, height from the reference,
    heading turned by the
    yaw between the two anchors), which relative body rewards compare against.

    ref_root_height_ema (N,): running average of the reference anchor's height, what gear_sonic's
    adaptive terminations read (`running_ref_root_height`): set to the start frame's at reset,
    then h <- 0.1 z + 0.9 h each time the command advances.

    reset_pose_noise (gear_sonic `pose_range`, `velocity_range`, `joint_position_range`), uniform
    [lo, hi] per key: root_pos_xy, root_pos_z (m); root_roll_pitch, root_yaw (rad, a world-frame
    rotation applied on top of the reference); root_lin_vel_xy, root_lin_vel_z (m/s, world);
    root_ang_vel_roll_pitch, root_ang_vel_yaw (rad/s, world x/y and z); joint_pos (rad, then
    clipped to the joint limits given, the soft limits in the env).
    """

    def __init__(
        self,
        table,
        sampler,
        *,
        num_envs: int,
        anchor_body: str,
        joint_names,
        joint_lower,
        joint_upper,
        step_dt: float,
        num_future_frames: int = 10,
        future_dt: float = 0.1,
        smpl_num_future_frames: int = 10,
        smpl_future_dt: float = 0.02,
        encoder_sample_probs: dict[str, float] | None = None,
        reset_pose_noise: dict[str, list[float]] | None = None,
        device="cpu",
    ):
        self.table, self.sampler, self.num_envs = table, sampler, int(num_envs)
        self.device = torch.device(device)
        if abs(step_dt * table.fps - 1.0) > 1e-6:
            raise ValueError(
                f"MotionCommand: the env steps every {step_dt} s but the motions are at "
                f"{table.fps} fps; motions.control_fps must equal 1 / (sim.timestep * sim.decimation)"
            )
        self.body_names = tuple(table.body_names)
        self.anchor_index = self.body_names.index(anchor_body)
        self._body_id_cache: dict[tuple, torch.Tensor] = {}
        self.lower_body_joint_ids = torch.tensor(
            lower_body_joint_ids(joint_names), dtype=torch.long, device=self.device
        )
        self.joint_lower = torch.tensor(joint_lower, dtype=torch.float32, device=self.device)
        self.joint_upper = torch.tensor(joint_upper, dtype=torch.float32, device=self.device)
        self.horizons = {
            "g1": future_frame_offsets(num_future_frames, future_dt, table.fps).to(self.device),
            "smpl": future_frame_offsets(smpl_num_future_frames, smpl_future_dt, table.fps).to(self.device),
        }
        probs = dict(encoder_sample_probs or {n: 1.0 for n in K.ENCODER_NAMES})
        unknown = set(probs) - set(K.ENCODER_NAMES)
        if unknown or any(v < 0 for v in probs.values()) or sum(probs.values()) <= 0:
            raise ValueError(
                f"encoder_sample_probs {probs}: keys must be among {K.ENCODER_NAMES}, "
                "values >= 0 with a positive sum"
            )
        self.encoder_probs = torch.tensor(
            [float(probs.get(n, 0.0)) for n in K.ENCODER_NAMES], device=self.device
        )
        self.reset_pose_noise = {k: (float(v[0]), float(v[1])) for k, v in (reset_pose_noise or {}).items()}
        bad = set(self.reset_pose_noise) - set(RESET_NOISE_KEYS)
        if bad:
            raise ValueError(
                f"reset_pose_noise: unknown keys {sorted(bad)}; known: {', '.join(RESET_NOISE_KEYS)}"
            )
        z = lambda: torch.zeros(self.num_envs, dtype=torch.long, device=self.device)  # noqa: E731
        self.clip, self.frame, self.start_frame, self.encoder_index = z(), z(), z(), z()
        self.last_frame = z()
        # env n's frame f is row row_base[n] + f of table.data (the clip's start in a full table or
        # arena, the env's window in a WindowReference): refreshed whenever clip or frame change
        self.row_base = z()
        # frames ahead observed: any key up to the shortest horizon's end, the LIGHT_KEYS of a
        # WindowReference beyond it (what the g1 horizon reads)
        ends = [int(h.max()) if len(h) else 0 for h in self.horizons.values()]
        self.reach, self.full_reach = max(ends), min(ends)
        self.ref_root_height_ema = torch.zeros(self.num_envs, device=self.device)
        self._future_cache: dict = {}  # (key, horizon) -> (N, F, ...); horizon -> (N, F) table rows
        self._rel = self._anchor_rot = None

    # ---- lookups ------------------------------------------------------------------------------
    def body_ids(self, names) -> torch.Tensor:
        """(K,) indices of bodies by name (cached: terms call this every step)."""
        key = tuple(names)
        ids = self._body_id_cache.get(key)
        if ids is None:
            missing = [n for n in key if n not in self.body_names]
            if missing:
                raise KeyError(f"unknown bodies {missing}; the robot has {list(self.body_names)}")
            ids = torch.tensor([self.body_names.index(n) for n in key], dtype=torch.long, device=self.device)
            self._body_id_cache[key] = ids
        return ids

    @property
    def global_frame(self) -> torch.Tensor:
        """(N,) the table row of every env's current frame."""
        return self.row_base + self.frame

    def _refresh_rows(self, ahead: int = 0) -> None:
        """row_base for the current clip and frame (a WindowReference refills windows here; with
        ahead=1, at a reset, also those the next step's advance would refill)."""
        self.row_base = self.table.row_base(self.clip, self.frame, self.reach, self.full_reach, ahead)

    def future(self, key: str, horizon: str = "g1") -> torch.Tensor:
        """Reference `key` (a ReferenceTable key) at the horizon's future frames: (N, F, ...)."""
        if torch.compiler.is_compiling():  # see _memo: compiled code skips the Python-side cache
            return _take(self.table.data[key], self._future_rows(horizon))
        cached = self._future_cache.get((key, horizon))
        if cached is None:
            self._check_reach(key, horizon)
            rows = self._future_cache.get(horizon)  # the table rows, shared by every key
            if rows is None:
                rows = self._future_cache[horizon] = self._future_rows(horizon)
            cached = self._future_cache[(key, horizon)] = _take(self.table.data[key], rows)
        return cached

    def _check_reach(self, key: str, horizon: str) -> None:
        """A WindowReference holds every key only up to full_reach frames ahead (see there)."""
        light = getattr(self.table, "light_keys", None)
        h = self.horizons[horizon]
        if key in getattr(self.table, "frame_keys", ()) and len(h) and int(h.max()) > 0:
            raise ValueError(
                f"motions.reference=window holds {key!r} only at each env's current frame; horizon "
                f"{horizon!r} reads it {int(h.max())} ahead: use reference=cached or table"
            )
        if light is not None and key not in light and len(h) and int(h.max()) > self.full_reach:
            raise ValueError(
                f"motions.reference=window holds {key!r} only {self.full_reach} frames ahead (the "
                f"shortest horizon); horizon {horizon!r} reads it {int(h.max())} ahead: window mode "
                f"reads only {sorted(light)} that far; use reference=cached or table"
            )

    def _future_rows(self, horizon: str) -> torch.Tensor:
        return future_rows(self.row_base, self.frame, self.last_frame, self.horizons[horizon])

    def _memo(self, slot: str, compute):
        """A value derived from the current state, kept in attribute `slot` until the state changes
        (set_robot / update_reference reset it to None). Inside torch.compile (TrackingEnv's
        compile=True) it is computed without touching the attribute: a compiled graph that writes a
        Python-side cache cannot be guarded, and the graph computes the value cheaply itself."""
        if torch.compiler.is_compiling():
            return compute()
        value = getattr(self, slot)
        if value is None:
            value = compute()
            setattr(self, slot, value)
        return value

    # ---- per step -----------------------------------------------------------------------------
    _REF_KEYS = (
        "root_pos_w",
        "root_quat_w",
        "joint_pos",
        "joint_vel",
        "body_pos_w",
        "body_quat_w",
        "body_lin_vel_w",
        "body_ang_vel_w",
        "vr_pos_local",
        "vr_ori_local",
    )

    def update_reference(self, env_ids: torch.Tensor | None = None) -> None:
        """Gather the reference at every env's current frame (after advancing or resetting).
        env_ids: only these envs changed frame since the last full gather (a reset after the
        step's update): their rows are re-gathered in place, the same values a full gather gives."""
        self._future_cache.clear()
        d = self.table.data
        if env_ids is not None and getattr(self, "ref_vr_ori_local", None) is not None:
            g = self.row_base[env_ids] + self.frame[env_ids]
            for key in self._REF_KEYS:
                getattr(self, "ref_" + key).index_copy_(0, env_ids, d[key].index_select(0, g))
            self._rel = None
            return
        g = self.global_frame
        for key in self._REF_KEYS:
            setattr(self, "ref_" + key, d[key].index_select(0, g))
        self.ref_anchor_pos_w = self.ref_body_pos_w[:, self.anchor_index]
        self.ref_anchor_quat_w = self.ref_body_quat_w[:, self.anchor_index]
        self._rel = None

    def set_robot(self, robot) -> None:
        """Take the robot anchor from the simulator state (after physics or a reset)."""
        self.robot_anchor_pos_w = robot.body_pos_w[:, self.anchor_index]
        self.robot_anchor_quat_w = robot.body_quat_w[:, self.anchor_index]
        self._anchor_rot = None
        self._rel = None

    @property
    def robot_anchor_rot_w(self) -> torch.Tensor:
        """(N,3,3) robot anchor rotation matrix (computed once per set_robot, on use: several
        observation terms rotate into the anchor frame)."""
        return self._memo("_anchor_rot", lambda: quat_to_matrix(self.robot_anchor_quat_w))

    def _relative(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._memo("_rel", self._compute_relative)

    def _compute_relative(self) -> tuple[torch.Tensor, torch.Tensor]:
        delta_pos = torch.cat((self.robot_anchor_pos_w[:, :2], self.ref_anchor_pos_w[:, 2:]), dim=-1)
        delta_q = yaw_quat(quat_mul(self.robot_anchor_quat_w, quat_conj(self.ref_anchor_quat_w)))[:, None]
        pos = delta_pos[:, None] + quat_apply(
            delta_q.expand_as(self.ref_body_quat_w), self.ref_body_pos_w - self.ref_anchor_pos_w[:, None]
        )
        return pos, _yaw_mul(delta_q, self.ref_body_quat_w)

    @property
    def ref_body_pos_rel_w(self) -> torch.Tensor:
        """(N,B,3) reference bodies re-anchored onto the robot (computed once per step, on use)."""
        return self._relative()[0]

    @property
    def ref_body_quat_rel_w(self) -> torch.Tensor:
        """(N,B,4) reference body orientations turned by the anchors' yaw difference."""
        return self._relative()[1]

    def advance(self) -> None:
        """Next frame, and the running reference height takes the new frame's anchor height in."""
        self.frame = torch.minimum(self.frame + 1, self.last_frame)
        self._refresh_rows()
        z = self.table.data["body_pos_w"].index_select(0, self.global_frame)[:, self.anchor_index, 2]
        self.ref_root_height_ema = REF_HEIGHT_EMA * z + (1.0 - REF_HEIGHT_EMA) * self.ref_root_height_ema

    def sampler_record(self, done_ids: torch.Tensor, terminated: torch.Tensor) -> None:
        """Tell the start sampler how the episodes of done_ids (E,) ended (before advancing)."""
        if len(done_ids):
            self.sampler.record(
                self.clip[done_ids], self.start_frame[done_ids], self.frame[done_ids], terminated[done_ids]
            )

    # ---- snapshot -----------------------------------------------------------------------------
    _STATE = ("clip", "frame", "start_frame", "encoder_index", "last_frame", "ref_root_height_ema")

    def state_dict(self) -> dict:
        return {**{k: getattr(self, k).clone() for k in self._STATE}, "sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Episode state and sampler counts; the reference is re-gathered (call set_robot after)."""
        for k in self._STATE:
            setattr(self, k, state[k].clone().to(self.device))
        self.table.ensure(self.clip)
        self._refresh_rows()
        self.sampler.load_state_dict(state["sampler"])
        self._future_cache.clear()
        self.update_reference()

    # ---- episodes -----------------------------------------------------------------------------
    def resample(self, env_ids: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """New clip, start frame and encoder for env_ids (E,); returns the reset state (E,·) for
        the simulator: the reference at the start frame with reset_pose_noise applied."""
        n = int(env_ids.numel())
        clip, start = self.sampler.sample(n, generator)
        clip, start = clip.to(self.device), start.to(self.device)
        self.clip[env_ids], self.frame[env_ids], self.start_frame[env_ids] = clip, start, start
        self.table.ensure(self.clip)  # a cached reference computes clips no env followed yet
        self._refresh_rows(ahead=1)  # after ensure: an arena may have moved clips; windows refill
        self.last_frame[env_ids] = self.table.clip_frames[clip] - 1
        self.encoder_index[env_ids] = torch.multinomial(
            self.encoder_probs, n, replacement=True, generator=generator
        )
        self._future_cache.clear()
        g = self.row_base[env_ids] + start
        d = self.table.data
        self.ref_root_height_ema[env_ids] = d["body_pos_w"].index_select(0, g)[:, self.anchor_index, 2]
        # index_select copies: the noise below never writes into the table.
        state = {k: d[k].index_select(0, g) for k in STATE_KEYS}
        self._add_noise(state, generator)
        return state

    def _uniform(self, shape, lo_hi, generator) -> torch.Tensor:
        lo, hi = lo_hi
        return lo + (hi - lo) * torch.rand(shape, generator=generator, device=self.device)

    def _add_noise(self, state: dict, generator: torch.Generator) -> None:
        n = state["root_pos_w"].shape[0]
        noise = self.reset_pose_noise
        if not noise:
            return

        def draw(key, k):  # (n, k) uniform in the key's range, zeros when the key is absent
            lo_hi = noise.get(key)
            return self._uniform((n, k), lo_hi, generator) if lo_hi else torch.zeros(n, k, device=self.device)

        state["root_pos_w"] += torch.cat((draw("root_pos_xy", 2), draw("root_pos_z", 1)), dim=-1)
        # World-frame roll, pitch, then yaw applied on top of the reference: q' = qz qy qx q.
        rpy = torch.cat((draw("root_roll_pitch", 2), draw("root_yaw", 1)), dim=-1)
        state["root_quat_w"] = quat_mul(quat_from_rpy(rpy), state["root_quat_w"])
        state["root_lin_vel_w"] += torch.cat((draw("root_lin_vel_xy", 2), draw("root_lin_vel_z", 1)), dim=-1)
        ang = (draw("root_ang_vel_roll_pitch", 2), draw("root_ang_vel_yaw", 1))
        state["root_ang_vel_w"] += torch.cat(ang, dim=-1)
        if "joint_pos" in noise:
            j = state["joint_pos"] + self._uniform(state["joint_pos"].shape, noise["joint_pos"], generator)
            state["joint_pos"] = torch.maximum(torch.minimum(j, self.joint_upper), self.joint_lower)
