"""Batched rotation math in torch. Quaternions are (w, x, y, z), unit, over any leading dims.

One convention for the whole package (MuJoCo's): `quat_apply(q, v)` rotates v from the frame
that q describes into its parent frame, and `quat_mul(a, b)` composes a then b in a's frame.
"""

from __future__ import annotations

import torch


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a ⊗ b. a, b: (..., 4) -> (..., 4)."""
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


# quat_mul's terms as one product: term i of component c is a[i] * b[_MUL_IDX[i, c]] * _MUL_SIGN[i, c]
_MUL_IDX = torch.tensor([[0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1], [3, 2, 1, 0]]).reshape(-1)
_MUL_SIGN = torch.tensor([[1.0, 1, 1, 1], [-1, 1, -1, 1], [-1, 1, 1, -1], [-1, -1, 1, 1]])
_TERMS_MAX = 4 * 4096  # row-major: above this many values the (..., 4, 4) terms cost more than they save


def quat_mul_terms(a: torch.Tensor, b: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """quat_mul(a, b) with the components along `dim` (-1, or 0: component-major), the same values
    bit for bit (the same products, summed in the same order; a - x is a + (-x) exactly) in ~6
    tensor ops instead of ~30: for the reference's FK and finite differences, whose calls are
    dispatch-bound. Row-major batches over _TERMS_MAX values use quat_mul (measured, one thread:
    48 quaternions 108 -> 41 us, 7,680 466 -> 654 us)."""
    if dim == 0:
        sign = _MUL_SIGN.to(a.device, a.dtype).view(4, 4, *([1] * (a.dim() - 1)))
        p = a.unsqueeze(1) * b.index_select(0, _MUL_IDX.to(b.device)).unflatten(0, (4, 4)) * sign
        return ((p[0] + p[1]) + p[2]) + p[3]
    if dim != -1:
        raise ValueError(f"quat_mul_terms: dim {dim}, expected -1 or 0")
    if max(a.numel(), b.numel()) > _TERMS_MAX:
        return quat_mul(a, b)
    sign = _MUL_SIGN.to(a.device, a.dtype)
    p = a.unsqueeze(-1) * b.index_select(-1, _MUL_IDX.to(b.device)).unflatten(-1, (4, 4)) * sign
    return ((p[..., 0, :] + p[..., 1, :]) + p[..., 2, :]) + p[..., 3, :]


_CONJ_SIGN: dict = {}


def quat_conj(q: torch.Tensor) -> torch.Tensor:
    """Conjugate (the inverse of a unit quaternion). (..., 4) -> (..., 4).
    One multiply by (1, -1, -1, -1) (exact), not slice + negate + cat."""
    key = (q.dtype, q.device)
    sign = _CONJ_SIGN.get(key)
    if sign is None:
        with torch.inference_mode(False):  # a normal tensor, usable under autograd later
            sign = _CONJ_SIGN[key] = torch.tensor((1.0, -1.0, -1.0, -1.0), dtype=q.dtype, device=q.device)
    return q * sign


def quat_normalize(q: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return q / q.norm(dim=-1, keepdim=True).clamp_min(eps)


def quat_apply(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors: q (..., 4), v (..., 3) -> (..., 3). Broadcasts leading dims."""
    w = q[..., :1]
    xyz = q[..., 1:]
    t = 2.0 * torch.linalg.cross(xyz, v, dim=-1)
    return v + w * t + torch.linalg.cross(xyz, t, dim=-1)


# cross products as elementwise ops: c[i] = a[P1[i]] b[P2[i]] - a[P2[i]] b[P1[i]]; _CM_Q1/_CM_Q2 the same
# rows of a quaternion's x, y, z
_CM_P1, _CM_P2 = torch.tensor([1, 2, 0]), torch.tensor([2, 0, 1])
_CM_Q1, _CM_Q2 = _CM_P1 + 1, _CM_P2 + 1


def quat_apply_cm(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """quat_apply of component-major q (4, ...) and v (3, ...) (broadcasting), the same values bit
    for bit: torch.linalg.cross computes component i as fma(a[P1], b[P2], -(a[P2] * b[P1])) and
    torch.addcmul(x, a, b) is fma(a, b, x) (TorchFK's `_quat_apply_c`, pinned against linalg.cross
    by tests/robots/test_fk_batching.py), here as ~12 elementwise ops over all the vectors where
    linalg.cross loops over them one by one."""
    d = q.device
    w, x1, nx2 = q[:1], q.index_select(0, _CM_Q1.to(d)), -q.index_select(0, _CM_Q2.to(d))
    p1, p2 = _CM_P1.to(d), _CM_P2.to(d)
    t = 2.0 * torch.addcmul(nx2 * v.index_select(0, p1), x1, v.index_select(0, p2))
    return v + w * t + torch.addcmul(nx2 * t.index_select(0, p1), x1, t.index_select(0, p2))


def quat_apply_inverse(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate vectors by the inverse of q: parent frame -> q's frame. (..., 4), (..., 3) -> (..., 3)."""
    return quat_apply(quat_conj(q), v)


def quat_from_axis_angle(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """axis (..., 3) unit, angle (...) radians -> (..., 4)."""
    half = 0.5 * angle.unsqueeze(-1)
    return torch.cat((torch.cos(half), torch.sin(half) * axis), dim=-1)


def quat_from_rpy(rpy: torch.Tensor) -> torch.Tensor:
    """World-frame roll, pitch, then yaw (rad) as one quaternion: qz(yaw) ⊗ qy(pitch) ⊗ qx(roll).
    (..., 3) -> (..., 4); the product written out (12 ops instead of three axis-angle quaternions
    and two Hamilton products)."""
    half = 0.5 * rpy
    c, s = torch.cos(half), torch.sin(half)
    cr, cp, cy = c.unbind(-1)
    sr, sp, sy = s.unbind(-1)
    cc, ss, sc, cs = cr * cp, sr * sp, sr * cp, cr * sp
    return torch.stack((cc * cy + ss * sy, sc * cy - cs * sy, cs * cy + sc * sy, cc * sy - ss * cy), dim=-1)


# Rotation-matrix entries as C + K * (q_a q_b + s q_c q_d), (w, x, y, z) = (0, 1, 2, 3):
# entry -> ((a, b), (c, d), s, K, C). Evaluated for all entries at once (two gathers, a multiply,
# two fused multiply-adds, bit-identical to writing each entry out: K is +-2 and s is +-1, exact).
_MATRIX_ENTRIES = {
    "00": ((2, 2), (3, 3), 1, -2, 1),
    "01": ((1, 2), (0, 3), -1, 2, 0),
    "02": ((1, 3), (0, 2), 1, 2, 0),
    "10": ((1, 2), (0, 3), 1, 2, 0),
    "11": ((1, 1), (3, 3), 1, -2, 1),
    "12": ((2, 3), (0, 1), -1, 2, 0),
    "20": ((1, 3), (0, 2), -1, 2, 0),
    "21": ((2, 3), (0, 1), 1, 2, 0),
    "22": ((1, 1), (2, 2), 1, -2, 1),
}
_QUADRATIC_CACHE: dict = {}


def _quat_quadratic(q: torch.Tensor, entries: tuple[str, ...]) -> torch.Tensor:
    """The given rotation-matrix entries of q, in order: (..., 4) -> (..., len(entries))."""
    key = (entries, q.dtype, q.device)
    consts = _QUADRATIC_CACHE.get(key)
    if consts is None:
        rows = [_MATRIX_ENTRIES[e] for e in entries]
        with torch.inference_mode(False):  # normal tensors, usable under autograd later
            left = torch.tensor([r[0][0] for r in rows] + [r[1][0] for r in rows], device=q.device)
            right = torch.tensor([r[0][1] for r in rows] + [r[1][1] for r in rows], device=q.device)
            sign, k, c = (
                torch.tensor([r[i] for r in rows], dtype=q.dtype, device=q.device) for i in (2, 3, 4)
            )
        consts = _QUADRATIC_CACHE[key] = (left, right, sign, k, c)
    left, right, sign, k, c = consts
    n = len(entries)
    prod = q.index_select(-1, left) * q.index_select(-1, right)
    return torch.addcmul(c, k, torch.addcmul(prod[..., :n], sign, prod[..., n:]))


_MATRIX = ("00", "01", "02", "10", "11", "12", "20", "21", "22")
_TAN_NORM = ("00", "10", "20", "01", "11", "21")  # the first two columns


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) -> (..., 3, 3) rotation matrices."""
    return _quat_quadratic(q, _MATRIX).reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(m: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 4) with w >= 0 (numerically robust branch choice)."""
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    cand = torch.stack(
        (
            torch.stack((1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01), -1),
            torch.stack((m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20), -1),
            torch.stack((m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21), -1),
            torch.stack((m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22), -1),
        ),
        dim=-2,
    )  # (..., 4, 4): row k is 4*q_k * q
    diag = torch.stack(
        (1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22), -1
    )
    best = diag.argmax(dim=-1, keepdim=True)
    q = torch.gather(cand, -2, best.unsqueeze(-1).expand(*best.shape[:-1], 1, 4)).squeeze(-2)
    q = quat_normalize(q)
    return torch.where(q[..., :1] < 0, -q, q)


def quat_to_tan_norm(q: torch.Tensor) -> torch.Tensor:
    """First two columns of the rotation matrix, a continuous 6-D encoding. (..., 4) -> (..., 6)."""
    return _quat_quadratic(q, _TAN_NORM)


def quat_slerp(q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation along the short arc. q0, q1 (..., 4); t (...) in [0, 1]."""
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
    return quat_normalize(w0 * q0 + w1 * q1)


def quat_error_angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in radians of the rotation taking b to a. (..., 4) x2 -> (...)."""
    dot = (a * b).sum(-1).abs().clamp(max=1.0)
    return 2.0 * torch.acos(dot)


def quat_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) -> rotation vector (..., 3), angle in [0, pi]."""
    q = torch.where(q[..., :1] < 0, -q, q)
    xyz = q[..., 1:]
    s = xyz.norm(dim=-1, keepdim=True)
    angle = 2.0 * torch.atan2(s, q[..., :1])
    scale = torch.where(s > 1e-8, angle / s.clamp_min(1e-12), torch.full_like(s, 2.0))
    return xyz * scale


def yaw_quat(q: torch.Tensor) -> torch.Tensor:
    """The heading-only part of q (rotation about world z). (..., 4) -> (..., 4)."""
    w, x, y, z = q.unbind(-1)
    yaw = torch.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    zeros = torch.zeros_like(yaw)
    return torch.stack((torch.cos(yaw / 2), zeros, zeros, torch.sin(yaw / 2)), dim=-1)


def xyzw_to_wxyz(q):
    """Works on numpy arrays and tensors alike: (..., 4) reordered."""
    return q[..., [3, 0, 1, 2]]


def wxyz_to_xyzw(q):
    return q[..., [1, 2, 3, 0]]
