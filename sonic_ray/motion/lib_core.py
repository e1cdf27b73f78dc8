"""MotionLib's arithmetic (resampling, finite-difference velocities, the state query) as functions
run by TorchScript where it compiles, else as Python: the same aten ops either way, so the same
values bit for bit (tests/motion/test_lib_core.py).

Why: the per-env window reference (`sonic_ray.envs.window_reference`) builds a small MotionLib
and queries it every step for the few windows it refills, ~150 small ops a call whose Python
dispatch costs more than their kernels; the full table's build runs the same functions, so the
window's rows and the table's stay equal. Each function is written once, in TorchScript's
subset (no globals, constants as arguments), and is the arithmetic of `frames.interpolate`
(`quat_slerp`, `torch.lerp`), `frames.velocity_between`, `frames.angular_velocity_between`
(`quat_mul_terms`, `quat_conj`, `quat_to_axis_angle`) and `MotionLib.state`, op for op.
"""

from __future__ import annotations

import warnings

import torch

from sonic_ray.utils.rotations import _MUL_IDX, _MUL_SIGN, _TERMS_MAX


def _normalize(q: torch.Tensor) -> torch.Tensor:
    # quat_normalize (eps 1e-12): Tensor.norm(dim=-1) is torch.linalg.vector_norm(q, 2, [-1])
    return q / torch.linalg.vector_norm(q, 2.0, [-1], True).clamp_min(1e-12)


def _slerp(q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    # quat_slerp
    t = t.unsqueeze(-1)
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin_theta = torch.sin(theta)
    small = sin_theta < 1e-6
    safe = torch.where(small, torch.ones_like(sin_theta), sin_theta)
    w0 = torch.where(small, 1.0 - t, torch.sin((1.0 - t) * theta) / safe)
    w1 = torch.where(small, t, torch.sin(t * theta) / safe)
    return _normalize(w0 * q0 + w1 * q1)


def _column(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(S,) -> (S, 1, ...) broadcasting against like's trailing dims."""
    shape = [-1]
    for _ in range(like.dim() - 1):
        shape.append(1)
    return v.reshape(shape)


def _interpolate(a: torch.Tensor, b: torch.Tensor, alpha: torch.Tensor, quat: bool) -> torch.Tensor:
    # frames.interpolate
    if quat:
        return _slerp(a, b, alpha)
    return torch.lerp(a, b, _column(alpha, a))


def _quat_mul(
    a: torch.Tensor, b: torch.Tensor, mul_idx: torch.Tensor, mul_sign: torch.Tensor
) -> torch.Tensor:
    # quat_mul_terms(a, b) (row-major), with quat_mul above _TERMS_MAX values (a literal here:
    # TorchScript reads no globals; checked equal below)
    if max(a.numel(), b.numel()) > 16384:
        aw, ax, ay, az = a.unbind(-1)
        bw, bx, by, bz = b.unbind(-1)
        return torch.stack(
            (
                aw * bw - ax * bx - ay * by - az * bz,
                aw * bx + ax * bw + ay * bz - az * by,
                aw * by - ax * bz + ay * bw + az * bx,
                aw * bz + ax * by - ay * bx + az * bw,
            ),
            dim=-1,
        )
    p = a.unsqueeze(-1) * b.index_select(-1, mul_idx).unflatten(-1, [4, 4]) * mul_sign
    return ((p[..., 0, :] + p[..., 1, :]) + p[..., 2, :]) + p[..., 3, :]


assert _TERMS_MAX == 16384, "lib_core._quat_mul: update its literal to rotations._TERMS_MAX"


def _axis_angle(q: torch.Tensor) -> torch.Tensor:
    # quat_to_axis_angle
    q = torch.where(q[..., :1] < 0, -q, q)
    xyz = q[..., 1:]
    s = torch.linalg.vector_norm(xyz, 2.0, [-1], True)
    angle = 2.0 * torch.atan2(s, q[..., :1])
    scale = torch.where(s > 1e-8, angle / s.clamp_min(1e-12), torch.full_like(s, 2.0))
    return xyz * scale


def velocity_core(x_next: torch.Tensor, x_prev: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """frames.velocity_between with its rate (S,) in x's dtype."""
    return (x_next - x_prev) * _column(rate, x_next)


def angular_velocity_core(
    q_next: torch.Tensor,
    q_prev: torch.Tensor,
    rate: torch.Tensor,
    conj_sign: torch.Tensor,
    mul_idx: torch.Tensor,
    mul_sign: torch.Tensor,
) -> torch.Tensor:
    """frames.angular_velocity_between with its rate (S,) in q's dtype."""
    return _axis_angle(_quat_mul(q_next, q_prev * conj_sign, mul_idx, mul_sign)) * _column(rate, q_next)


def frame_velocities_core(
    pos: torch.Tensor,
    quat: torch.Tensor,
    nxt: torch.Tensor,
    prev: torch.Tensor,
    here: torch.Tensor,
    rate: torch.Tensor,
    conj_sign: torch.Tensor,
    mul_idx: torch.Tensor,
    mul_sign: torch.Tensor,
    lin: torch.Tensor,
    ang: torch.Tensor,
) -> None:
    """The window's body velocities: rows `here` (S,) of lin and ang written with
    `velocity_core` / `angular_velocity_core` of the body poses pos, quat at rows nxt and prev."""
    lin.index_copy_(0, here, velocity_core(pos.index_select(0, nxt), pos.index_select(0, prev), rate))
    ang.index_copy_(
        0,
        here,
        angular_velocity_core(
            quat.index_select(0, nxt), quat.index_select(0, prev), rate, conj_sign, mul_idx, mul_sign
        ),
    )


def resample_core(
    arrays: list[torch.Tensor],
    quat: int,
    i0: torch.Tensor,
    alpha: torch.Tensor,
    prev: torch.Tensor,
    nxt: torch.Tensor,
    rate: torch.Tensor,
    conj_sign: torch.Tensor,
    mul_idx: torch.Tensor,
    mul_sign: torch.Tensor,
) -> list[torch.Tensor]:
    """A MotionLib's frames from the stored arrays: [root_pos, root_quat, joint_pos, (smpl
    joints)] (rows i0 and i0 + 1 of each array interpolated at alpha (S,), slerp for arrays[quat]),
    then [root_lin_vel, root_ang_vel, joint_vel] by finite differences (frames nxt and prev (S,),
    `rate` fps / span (S,)) of the first three."""
    i1 = i0 + 1
    out: list[torch.Tensor] = []
    for j in range(len(arrays)):
        x = arrays[j]
        out.append(_interpolate(x.index_select(0, i0), x.index_select(0, i1), alpha, j == quat))
    pos, rot, joints = out[0], out[1], out[2]
    out.append(velocity_core(pos.index_select(0, nxt), pos.index_select(0, prev), rate))
    out.append(
        angular_velocity_core(
            rot.index_select(0, nxt), rot.index_select(0, prev), rate, conj_sign, mul_idx, mul_sign
        )
    )
    out.append(velocity_core(joints.index_select(0, nxt), joints.index_select(0, prev), rate))
    return out


def state_core(
    frames: list[torch.Tensor],
    quat: int,
    clip_frames: torch.Tensor,
    clip_start: torch.Tensor,
    clip_ids: torch.Tensor,
    times: torch.Tensor,
    fps: float,
) -> list[torch.Tensor]:
    """MotionLib.state's arithmetic: each of `frames` (S, ...) at (clip_ids (N,) long, times (N,)
    float32 seconds), interpolated between frames (slerp for frames[quat])."""
    last = (clip_frames[clip_ids] - 1).to(torch.float32)
    f = (times * fps).clamp(min=0.0)
    f = torch.minimum(f, last)
    i0 = f.floor().long()
    alpha = f - i0
    i1 = torch.minimum(i0 + 1, last.long())
    g0 = clip_start[clip_ids] + i0
    g1 = clip_start[clip_ids] + i1
    out: list[torch.Tensor] = []
    for j in range(len(frames)):
        x = frames[j]
        out.append(_interpolate(x.index_select(0, g0), x.index_select(0, g1), alpha, j == quat))
    return out


def segment_state_core(
    arrays: list[torch.Tensor],
    quat: int,
    i0: torch.Tensor,
    alpha: torch.Tensor,
    prev: torch.Tensor,
    nxt: torch.Tensor,
    rate: torch.Tensor,
    conj_sign: torch.Tensor,
    mul_idx: torch.Tensor,
    mul_sign: torch.Tensor,
    clip_frames: torch.Tensor,
    clip_start: torch.Tensor,
    clip_ids: torch.Tensor,
    local: torch.Tensor,
    fps: float,
) -> list[torch.Tensor]:
    """`resample_core`'s frames queried by `state_core` at control-rate frames `local` (N,) of
    parts clip_ids (N,) (`frame_state`'s times: local / fps)."""
    frames = resample_core(arrays, quat, i0, alpha, prev, nxt, rate, conj_sign, mul_idx, mul_sign)
    times = local.to(torch.float32) / fps
    return state_core(frames, quat, clip_frames, clip_start, clip_ids, times, fps)


_SCRIPTED: dict = {}  # function -> its TorchScript version, or False where scripting failed
USE_SCRIPT = True  # False: always the Python functions (tests compare the two)


def run(fn, *args):
    """fn(*args), scripted (TorchScript, compiled on first use, run by the plain interpreter) where
    it compiles and outside torch.compile, else as Python: the same aten ops, so the same values."""
    if not USE_SCRIPT or torch.compiler.is_compiling():
        return fn(*args)
    sc = _SCRIPTED.get(fn)
    if sc is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script's own
                sc = _SCRIPTED[fn] = torch.jit.script(fn)
        except Exception as e:  # noqa: BLE001 - any failure: the eager function
            warnings.warn(
                f"motion lib_core: TorchScript unavailable ({type(e).__name__}: {e}); {fn.__name__} "
                "runs eagerly",
                stacklevel=2,
            )
            sc = _SCRIPTED[fn] = False
    if sc is False:
        return fn(*args)
    # the plain interpreter: no fusion (other roundings on a GPU), no shape specialisation
    with torch.jit.optimized_execution(False):
        return sc(*args)


_CONSTS: dict = {}


def consts(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(conj_sign (4,), mul_idx (16,), mul_sign (4, 4)) as quat_conj / quat_mul_terms use them."""
    key = (dtype, device)
    c = _CONSTS.get(key)
    if c is None:
        with torch.inference_mode(False):
            c = _CONSTS[key] = (
                torch.tensor((1.0, -1.0, -1.0, -1.0), dtype=dtype, device=device),
                _MUL_IDX.to(device),
                _MUL_SIGN.to(device, dtype),
            )
    return c
