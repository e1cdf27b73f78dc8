"""TorchFK batching: its component-major Hamilton product gives quat_mul's values bit for bit, and one
body's chain alone gives the full call's pose."""

import pytest
import torch

from sonic_ray.robots.fk import _quat_mul_c
from sonic_ray.utils.rotations import quat_mul


@pytest.mark.parametrize(
    "shape_a, shape_b",
    [((48, 4), (48, 4)), ((64, 1, 4), (64, 30, 4)), ((7, 4), (1, 4)), ((9000, 4), (9000, 4))],
)
def test_component_major_product_equals_quat_mul_exactly(shape_a, shape_b):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(*shape_a, generator=g), torch.randn(*shape_b, generator=g)
    a[0], b[..., 1] = 0.0, -0.0  # signed zeros
    got, want = _quat_mul_c(a.movedim(-1, 0), b.movedim(-1, 0)).movedim(0, -1), quat_mul(a, b)
    assert got.shape == want.shape and torch.equal(got, want)
    assert torch.equal(torch.signbit(got), torch.signbit(want))


def test_one_bodys_chain_gives_the_full_calls_pose_exactly():
    from sonic_ray.robots import TorchFK, load_model

    model, robot = load_model("g1")
    fk = TorchFK(model, robot)
    g = torch.Generator().manual_seed(0)
    args = torch.randn(5, 3, generator=g), torch.randn(5, 4, generator=g), torch.randn(5, 29, generator=g)
    args[0][0, 1], args[1][1, 2] = -0.0, -0.0  # signed zeros (the root's pose is returned as is)
    pos, quat = fk.forward(*args)
    bits = lambda x: x.view(torch.int32)  # noqa: E731
    for name in (robot.anchor_body, "left_wrist_yaw_link", "right_ankle_roll_link"):
        i = fk.body_names.index(name)
        p, q = fk.forward(*args, only=name)
        assert torch.equal(bits(p), bits(pos[:, i])) and torch.equal(bits(q), bits(quat[:, i])), name
    # the root's pose: a fresh tensor (not the caller's), broadcast leading dims
    p, q = fk.forward(args[0], args[1], args[2], only=robot.anchor_body)
    assert p.data_ptr() != args[0].data_ptr()
    p, q = fk.forward(args[0].view(5, 1, 3), args[1][:1], args[2].view(5, 1, 29), only=robot.anchor_body)
    assert p.shape == (5, 1, 3) and q.shape == (5, 1, 4)
    assert torch.equal(bits(q[:, 0]), bits(quat[:1, fk.body_names.index(robot.anchor_body)].expand(5, 4)))


def test_cross_products_as_fused_elementwise_ops_equal_linalg_cross():
    """linalg.cross's component i is fma(a[P1], b[P2], -(a[P2] b[P1])); addcmul is that fma, on any
    size (vectorised body and scalar tail) and on broadcast operands."""
    from sonic_ray.robots.fk import _P1, _P2

    g = torch.Generator().manual_seed(0)
    for n in (1, 7, 33, 1000, 100_000):
        a, b = torch.randn(3, 2, n, generator=g) * 4, torch.randn(3, 2, n, generator=g) * 4
        for bb in (b, b[..., :1]):
            want = torch.linalg.cross(a, bb.expand_as(a), dim=0)
            got = torch.addcmul(-a[_P2] * bb[_P1], a[_P1], bb[_P2])
            assert torch.equal(got, want), n


def test_large_batches_give_the_row_by_row_values():
    """Above _CROSS_MIN rows FK takes the elementwise cross products: the same poses and points as
    one row at a time (linalg.cross)."""
    from sonic_ray.robots import TorchFK, load_model

    model, robot = load_model("g1")
    fk = TorchFK(model, robot)
    g = torch.Generator().manual_seed(1)
    n = 600
    args = torch.randn(n, 3, generator=g), torch.randn(n, 4, generator=g), torch.randn(n, 29, generator=g)
    table = fk.point_table(robot.vr_points)
    pos, quat, pts = fk.forward(*args, points=(table,))
    for i in range(0, n, 97):
        p, q, pt = fk.forward(*(x[i : i + 1] for x in args), points=(table,))
        assert (
            torch.equal(p, pos[i : i + 1])
            and torch.equal(q, quat[i : i + 1])
            and torch.equal(pt, pts[i : i + 1])
        )
    assert torch.equal(pts, fk.points(pos, quat, table))


@pytest.mark.parametrize("rows", [5, 1000])  # linalg.cross and addcmul cross products
def test_joints_at_their_bodies_origins_skip_the_anchor_terms_exactly(rows):
    """The G1's joints sit at their bodies' origins: FK skips the two anchor rotations (bp + 0.0);
    the poses equal the general path's bit for bit, signed zeros too."""
    from sonic_ray.robots import TorchFK, load_model

    model, robot = load_model("g1")
    fast, general = TorchFK(model, robot), TorchFK(model, robot)
    g = torch.Generator().manual_seed(1)
    args = [
        torch.randn(rows, 3, generator=g),
        torch.randn(rows, 4, generator=g),
        torch.randn(rows, 29, generator=g),
    ]
    args[0][:2], args[1][:3, 1:3], args[2][:4] = -0.0, -0.0, 0.0  # signed zeros in every input
    general._levels_of(None)
    assert any(lv.get("zero_anchor") for lv in general._levels[None])
    for lv in general._levels[None]:
        lv["zero_anchor"] = False
    for a, b in zip(fast.forward(*args), general.forward(*args), strict=True):
        assert torch.equal(a.view(torch.int32), b.view(torch.int32))


def test_precomputed_terms_give_the_products_values_exactly():
    """A constant quaternion's signed terms (`_mul_terms_of`) and a hinge rotation built as terms
    ((cos | sin) x (1 | axis) x sign) give `_quat_mul_c`'s values, signed zeros too."""
    from sonic_ray.robots.fk import _CS_IDX, _mul_terms_of, _quat_mul_const

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 5, 300, generator=g), torch.randn(4, 5, 1, generator=g)
    a[:, 0, :7], b[1, 2] = 0.0, -0.0
    a[2, 1, :5] = -0.0
    for got, want in (
        (_quat_mul_const(a, _mul_terms_of(b)), _quat_mul_c(a, b)),
        (_quat_mul_const(a, _mul_terms_of(b.expand(4, 5, 300))), _quat_mul_c(a, b.expand(4, 5, 300))),
    ):
        assert torch.equal(got, want) and torch.equal(torch.signbit(got), torch.signbit(want))
    axis = torch.tensor(
        [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, -0.0, 1.0], [0.6, 0.0, 0.8], [0.0, 0.0, -1.0]]
    )
    axis = axis.T.unsqueeze(-1)  # (3, K, 1)
    half = 0.5 * torch.cat((torch.zeros(1, 5, 2), torch.randn(1, 5, 298, generator=g) * 3), dim=2)
    qloc = torch.cat((torch.cos(half), torch.sin(half) * axis), dim=0)
    cs = torch.cat((torch.cos(half), torch.sin(half)), dim=0)
    terms = cs.index_select(0, _CS_IDX).unflatten(0, (4, 4)) * _mul_terms_of(
        torch.cat((torch.ones_like(axis[:1]), axis), dim=0)
    )
    got, want = _quat_mul_const(a, terms), _quat_mul_c(a, qloc)
    assert torch.equal(got, want) and torch.equal(torch.signbit(got), torch.signbit(want))


def test_scripted_core_equals_the_python_one(monkeypatch):
    """TorchFK runs `_fk_core` scripted (TorchScript) where it compiles, else as Python: the same
    ops, so the same values bit for bit (poses, points, one body's chain; small and large batches,
    broadcast leading dims, signed zeros)."""
    from sonic_ray.envs.reference import FramePoints
    from sonic_ray.robots import TorchFK, load_model
    from sonic_ray.robots import fk as fk_module

    model, robot = load_model("g1")
    fk = TorchFK(model, robot)
    assert isinstance(fk_module._core(), torch.jit.ScriptFunction)  # TorchScript works in this torch
    pts = FramePoints(
        fk, anchor_body=robot.anchor_body, vr_points=robot.vr_points, smpl_points=robot.smpl_keypoints
    )
    tables = (pts.vr_table, pts.smpl_table)
    g = torch.Generator().manual_seed(2)

    def calls(fk):
        out = []
        for r in (1, 20, 300):
            rp, rq = torch.randn(r, 3, generator=g), torch.randn(r, 4, generator=g)
            jp = torch.randn(r, fk.num_joints, generator=g) * 3
            rp[0, 1], jp[0, :4] = -0.0, -0.0
            out += fk.forward(rp, rq, jp, points=tables)
            out += fk.forward(rp.view(r, 1, 3), rq[:1], jp.view(r, 1, -1))
            out += fk.forward(rp, rq, jp, only="left_wrist_yaw_link")
            out += fk.forward(rp, rq, jp, only=robot.anchor_body)
        return out

    state = g.get_state()
    scripted = calls(fk)
    monkeypatch.setattr(fk_module, "_FK_SCRIPTED", False)  # the Python fallback
    g.set_state(state)
    eager = calls(fk)
    assert len(scripted) == len(eager)
    for a, b in zip(scripted, eager):
        assert a.shape == b.shape and torch.equal(a.view(torch.int32), b.view(torch.int32))
