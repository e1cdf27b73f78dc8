"""Export a checkpoint's policy to ONNX: one file per encoder path, plus encoder- and decoder-only.

Files written to the output folder (each carrying the metadata of `onnx_meta.py`):
- `policy_<encoder>.onnx`: inputs (tokenizer_<encoder> (N,E), policy (N,P)) -> action (N,A): the
  encoder, FSQ and the g1_dyn decoder, as `ActorCritic.act_inference` computes them for a row
  routed to that encoder (deterministic mean, no residual);
- `encoder_<encoder>.onnx`: tokenizer_<encoder> (N,E) -> latent (N,D) pre-quantization, token (N,D);
- `decoder_g1_dyn.onnx`: (token (N,D), policy (N,P)) -> action (N,A);
- `export.json`: the files, their max |onnx - torch| and the source checkpoint.

Normalisers: the actor reads raw observations (only the critic normalises, and the critic is not
exported), so there is nothing to bake in; the metadata says so. FSQ exports through
`FSQ.quantize` (Tanh or Clip/Min, Round, Div): the straight-through rounding is a training
device whose forward value is q, so the exported graph computes q itself.

Every model is run through ONNX Runtime on seeded random inputs and compared with torch before
anything is written; a difference above `tol` (or a non-finite output) raises `ExportMismatch`.
Rows whose latent lies within 1e-4 of an FSQ rounding boundary are left out of the token/action
comparison (a 1-ulp difference there legitimately flips a level); their count is reported.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sonic_ray.config.compose import ConfigError
from sonic_ray.deploy import onnx_meta
from sonic_ray.deploy.observations import DeployContext, Inputs, Reference, RobotState
from sonic_ray.deploy.observations import term as deploy_term
from sonic_ray.envs.command import future_frame_offsets, lower_body_joint_ids
from sonic_ray.envs.factory import observation_groups
from sonic_ray.eval.policy import read_checkpoint
from sonic_ray.models import keys as K
from sonic_ray.robots import get_robot

OPSET = 17
BOUNDARY_MARGIN = 1e-4  # in FSQ level units


class ExportMismatch(RuntimeError):
    """ONNX Runtime disagrees with torch beyond the tolerance (or gives non-finite values)."""


# ---- checkpoint -> policy --------------------------------------------------------------------------
def _obs_dims(sd: dict[str, torch.Tensor]) -> tuple[dict[str, int], int]:
    """Observation widths and action dim, read off an ActorCritic's weight shapes."""

    def last_linear(prefix: str) -> str:
        idx = max(int(k.split(".")[-2]) for k in sd if k.startswith(prefix) and k.endswith(".weight"))
        return f"{prefix}{idx}.weight"

    latent = sd[
        last_linear(
            "token.encoders." + next(n for n in K.ENCODER_NAMES if f"token.encoders.{n}.0.weight" in sd) + "."
        )
    ].shape[0]
    dims = {
        K.TOKENIZER_KEYS[n]: int(sd[f"token.encoders.{n}.0.weight"].shape[1])
        for n in K.ENCODER_NAMES
        if f"token.encoders.{n}.0.weight" in sd
    }
    dims[K.POLICY] = int(sd["token.dyn_decoder.0.weight"].shape[1]) - int(latent)
    dims[K.CRITIC] = int(sd["critic_normalizer.mean"].shape[0])
    dims.setdefault(K.TOKENIZER_G1, int(sd[last_linear("token.kin_decoder.")].shape[0]))
    return dims, int(sd["log_std"].shape[0])


def load_for_export(checkpoint: str | Path):
    """(cfg, ActorCritic in eval mode, info) from a checkpoint or run dir (its latest), through
    `sonic_ray.eval.policy.read_checkpoint` (the one Ray-free loader). info: checkpoint path,
    iteration, experiment."""
    loaded = read_checkpoint(checkpoint)
    try:
        cfg, ac = loaded.policy()
    except ConfigError as e:
        raise ValueError(
            f"{loaded.path}: its config_yaml does not fit this sonic-ray's config schema "
            f"(saved by another version?): {e}"
        ) from e
    return (
        cfg,
        ac,
        {"checkpoint": str(loaded.path), "iteration": loaded.iteration, "experiment": cfg.experiment},
    )


# ---- the exported graphs ---------------------------------------------------------------------------
class FrozenNormalizer(nn.Module):
    """A RunningNormalizer's statistics as float32 constants: (x - mean) / std, clipped (Sub, Div, Clip)."""

    def __init__(self, norm):
        super().__init__()
        self.register_buffer("mean", norm.mean.detach().float().clone())
        self.register_buffer("std", torch.sqrt(norm.var + norm.eps).detach().float().clone())
        self.clip = float(norm.clip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / self.std).clamp(-self.clip, self.clip)


def _normalizer(ac, key: str) -> nn.Module:
    """The actor's normaliser of an input group, frozen into the graph, or identity without one."""
    return FrozenNormalizer(ac.actor_normalizers[key]) if key in ac.actor_normalizers else nn.Identity()


class EncoderGraph(nn.Module):
    """tokenizer (N,E) -> latent (N,D), token (N,D)."""

    def __init__(self, ac, encoder: str):
        super().__init__()
        self.encoder, self.fsq = ac.token.encoders[encoder], ac.token.fsq
        self.norm = _normalizer(ac, K.TOKENIZER_KEYS[encoder])

    def forward(self, tokenizer: torch.Tensor):
        latent = self.encoder(self.norm(tokenizer))
        return latent, self.fsq.quantize(latent)


class DecoderGraph(nn.Module):
    """token (N,D), policy (N,P) -> action (N,A)."""

    def __init__(self, ac):
        super().__init__()
        self.decoder = ac.token.dyn_decoder
        self.norm = _normalizer(ac, K.POLICY)

    def forward(self, token: torch.Tensor, policy: torch.Tensor) -> torch.Tensor:
        return self.decoder(torch.cat((token, self.norm(policy)), dim=-1))


class PolicyGraph(nn.Module):
    """tokenizer (N,E), policy (N,P) -> action (N,A): encoder, FSQ, g1_dyn decoder."""

    def __init__(self, ac, encoder: str):
        super().__init__()
        self.enc, self.dec = EncoderGraph(ac, encoder), DecoderGraph(ac)

    def forward(self, tokenizer: torch.Tensor, policy: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc(tokenizer)[1], policy)


@dataclass
class Spec:
    """One file to export: its graph, named inputs (in order) with widths and obs groups, outputs."""

    filename: str
    kind: str
    encoder: str | None
    graph: nn.Module
    inputs: list[tuple[str, int, str | None]]  # (name, width, observation group or None)
    outputs: list[tuple[str, str]]  # (name, what it holds)
    max_abs_diff: float = float("nan")
    excluded_rows: int = 0


def export_specs(ac, obs_dims: dict[str, int]) -> list[Spec]:
    d, a = ac.token.latent_dim, ac.log_std.shape[0]
    tok = f"FSQ token (N,{d}): values on each dimension's grid in [-1, 1]"
    act = f"action (N,{a}): joint_pos_target = default_joint_pos + action_scale * action"
    specs = []
    for n in ac.token.encoder_names:
        key = K.TOKENIZER_KEYS[n]
        specs.append(
            Spec(
                f"policy_{n}.onnx",
                "policy",
                n,
                PolicyGraph(ac, n),
                [(key, obs_dims[key], key), (K.POLICY, obs_dims[K.POLICY], K.POLICY)],
                [("action", act)],
            )
        )
    for n in ac.token.encoder_names:
        key = K.TOKENIZER_KEYS[n]
        specs.append(
            Spec(
                f"encoder_{n}.onnx",
                "encoder",
                n,
                EncoderGraph(ac, n),
                [(key, obs_dims[key], key)],
                [("latent", f"pre-quantization latent (N,{d})"), ("token", tok)],
            )
        )
    specs.append(
        Spec(
            "decoder_g1_dyn.onnx",
            "decoder",
            None,
            DecoderGraph(ac),
            [("token", d, None), (K.POLICY, obs_dims[K.POLICY], K.POLICY)],
            [("action", act)],
        )
    )
    return specs


def to_onnx(spec: Spec, batch: int = 2) -> bytes:
    args = tuple(torch.zeros(batch, w) for _, w, _ in spec.inputs)
    names_in, names_out = [n for n, _, _ in spec.inputs], [n for n, _ in spec.outputs]
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            spec.graph.eval(),
            args,
            buf,
            input_names=names_in,
            output_names=names_out,
            dynamic_axes={n: {0: "batch"} for n in names_in + names_out},
            opset_version=OPSET,
            dynamo=False,
        )
    return buf.getvalue()


# ---- ONNX Runtime vs torch ---------------------------------------------------------------------------
def near_fsq_boundary(fsq, latent: torch.Tensor, margin: float = BOUNDARY_MARGIN) -> torch.Tensor:
    """(N,) rows with a latent dimension within `margin` levels of a rounding boundary."""
    u = fsq.level_coordinate(latent)  # saturated values (clamp, tanh) sit on the end codes
    return (((u - u.floor()) - 0.5).abs() < margin).any(-1)


def random_inputs(spec: Spec, ac, *, batch: int, seed: int) -> tuple[dict[str, np.ndarray], torch.Tensor]:
    """Seeded inputs for `spec` and the (N,) rows to leave out of token/action comparisons."""
    g = torch.Generator().manual_seed(seed)
    feed, skip = {}, torch.zeros(batch, dtype=torch.bool)
    for name, width, _ in spec.inputs:
        if name == "token":
            # codes of every level, ends included: uniform latents past the code range, quantized
            feed[name] = ac.token.fsq.quantize(2.4 * torch.rand(batch, width, generator=g) - 1.2).numpy()
        else:
            feed[name] = torch.randn(batch, width, generator=g).numpy()
    if spec.encoder is not None:
        with torch.no_grad():
            latent = ac.token.encoders[spec.encoder](torch.from_numpy(feed[spec.inputs[0][0]]))
        skip = near_fsq_boundary(ac.token.fsq, latent)
    return feed, skip


def compare(
    spec: Spec, model_bytes: bytes, feed: dict[str, np.ndarray], skip: torch.Tensor, *, tol: float
) -> float:
    """Max |onnx - torch| over the outputs (latent on every row, token/action off boundary rows)."""
    sess = onnx_meta.ort_session(model_bytes)
    got = sess.run([n for n, _ in spec.outputs], feed)
    with torch.no_grad():
        want = spec.graph(*(torch.from_numpy(feed[n]) for n, _, _ in spec.inputs))
    want = want if isinstance(want, tuple) else (want,)
    keep = (~skip).numpy()
    worst = 0.0
    for (name, _), g_out, w_out in zip(spec.outputs, got, want):
        rows = slice(None) if name == "latent" else keep
        g_arr, w_arr = np.asarray(g_out)[rows], w_out.numpy()[rows]
        if g_arr.shape != w_arr.shape:
            raise ExportMismatch(
                f"{spec.filename}: output {name!r} has shape {g_arr.shape} in ONNX Runtime, "
                f"{w_arr.shape} in torch"
            )
        if not (np.isfinite(g_arr).all() and np.isfinite(w_arr).all()):
            raise ExportMismatch(
                f"{spec.filename}: output {name!r} is not finite (torch or ONNX Runtime): "
                "the checkpoint's weights hold NaN/inf?"
            )
        diff = float(np.abs(g_arr - w_arr).max()) if g_arr.size else 0.0
        if diff > tol:
            raise ExportMismatch(
                f"{spec.filename}: output {name!r} differs between ONNX Runtime and torch by "
                f"{diff:.3g} > tolerance {tol:g}"
            )
        worst = max(worst, diff)
    return worst


# ---- metadata --------------------------------------------------------------------------------------
def observation_layouts(cfg, robot) -> tuple[dict[str, dict], dict]:
    """Per-group layouts (terms with their widths, from the deployment terms on a probe state) for
    every observation group of the config, and the command metadata (horizons, leg joints)."""
    mc = cfg.env.commands.motion
    fps = float(cfg.motions.control_fps)
    offsets = lambda n, dt: future_frame_offsets(n, dt, fps).numpy()  # noqa: E731
    legs = lower_body_joint_ids(robot.joint_names)
    command = {
        "future_frame_offsets": {
            "g1": offsets(mc.num_future_frames, mc.future_dt),
            "smpl": offsets(mc.smpl_num_future_frames, mc.smpl_future_dt),
        },
        "num_future_frames": mc.num_future_frames,
        "future_dt": mc.future_dt,
        "smpl_num_future_frames": mc.smpl_num_future_frames,
        "smpl_future_dt": mc.smpl_future_dt,
        "lower_body_joint_ids": legs,
        "lower_body_joint_names": [robot.joint_names[i] for i in legs],
    }
    j, b, p, s = robot.num_joints, robot.num_bodies, len(robot.vr_points), len(robot.smpl_keypoints)
    quat = lambda *shape: np.broadcast_to(np.array([1.0, 0, 0, 0]), (*shape, 4))  # noqa: E731
    probe_ref = Reference(
        {
            "joint_pos": np.zeros((1, j)),
            "joint_vel": np.zeros((1, j)),
            "root_quat_w": quat(1),
            "anchor_pos_w": np.zeros((1, 3)),
            "anchor_quat_w": quat(1),
            "smpl_joints_local": np.zeros((1, s, 3)),
            "vr_pos_local": np.zeros((1, p, 3)),
            "vr_ori_local": np.zeros((1, p, 6)),
        },
        name="probe",
    )
    state = RobotState(quat(), np.zeros(3), np.zeros(3), np.zeros(j), np.zeros(j), np.zeros((b, 3)), quat(b))
    meta_like = {
        "default_joint_pos": robot.default_joint_pos,
        "body_names": robot.body_names,
        "anchor_body": robot.anchor_body,
        "command": command,
    }
    probe = Inputs(state, probe_ref, 0, np.zeros(j), DeployContext.from_metadata(meta_like))
    layouts = {}
    for key, g in observation_groups(cfg.env.observations).items():
        terms = []
        for name, t in g["terms"].items():
            if t.get("params"):
                raise ValueError(
                    f"env.observations: term {name!r} of group {key!r} has params {t['params']}; "
                    "the deployment terms take none"
                )
            dim = int(np.asarray(deploy_term(name)(probe)).size)
            terms.append(
                {
                    "name": name,
                    "dim": dim,
                    "noise": float(t.get("noise", 0.0)),
                    "scale": float(t.get("scale", 1.0)),
                }
            )
        frame = sum(t["dim"] for t in terms)
        hist = int(g.get("history_length", 1))
        layouts[key] = {
            "history_length": hist,
            "enable_corruption": bool(g.get("enable_corruption", False)),
            "frame_dim": frame,
            "dim": hist * frame,
            "terms": terms,
        }
    return layouts, command


def base_metadata(cfg, robot, layouts: dict, command: dict, info: dict) -> dict:
    """Metadata shared by every file of one export ("all_layouts" is dropped per file)."""
    q = cfg.actor_critic.quantizer
    dt = cfg.sim.timestep * cfg.sim.decimation
    meta = {
        "format": onnx_meta.FORMAT,
        **onnx_meta.robot_metadata(robot),
        "control_hz": 1.0 / dt,
        "control_dt": dt,
        "physics_dt": cfg.sim.timestep,
        "decimation": cfg.sim.decimation,
        "command": command,
        "fsq": {
            "levels": list(q.levels),
            "num_tokens": q.num_tokens,
            "dim": len(q.levels) * q.num_tokens,
            "bound": q.bound,
        },
        "normalizers": "none: the actor reads raw observations (only the critic normalises; it is not "
        "exported)",
        "action": "joint_pos_target = default_joint_pos + action_scale * action (per joint, joint_names "
        "order)",
        "eval_terminations": {k: dataclasses.asdict(v) for k, v in cfg.env.eval_terminations.items()},
        "source": info,
        "all_layouts": layouts,
    }
    return meta


def file_metadata(base: dict, spec: Spec, *, tol: float) -> dict:
    meta = {k: v for k, v in base.items() if k != "all_layouts"}
    groups = [grp for _, _, grp in spec.inputs if grp is not None]
    meta.update(
        kind=spec.kind,
        encoder=spec.encoder,
        inputs=[
            {
                "name": n,
                "shape": ["batch", w],
                "dtype": "float32",
                "holds": f"observation group {grp!r}" if grp else "FSQ token",
            }
            for n, w, grp in spec.inputs
        ],
        outputs=[{"name": n, "holds": h} for n, h in spec.outputs],
        observations={grp: base["all_layouts"][grp] for grp in groups},
        check={
            "max_abs_diff": spec.max_abs_diff,
            "tolerance": tol,
            "rows_near_fsq_boundary": spec.excluded_rows,
        },
    )
    return meta


# ---- the command -----------------------------------------------------------------------------------
@dataclass
class ExportReport:
    out_dir: Path
    files: list[Spec]

    @property
    def max_abs_diff(self) -> float:
        return max(s.max_abs_diff for s in self.files)


def check_layouts(layouts: dict, obs_dims: dict[str, int], source: str) -> None:
    """The config's observation layout must produce the widths the checkpoint's weights take."""
    for key, width in obs_dims.items():
        if key in layouts and layouts[key]["dim"] != width:
            terms = ", ".join(f"{t['name']}={t['dim']}" for t in layouts[key]["terms"])
            raise ValueError(
                f"{source}: observation group {key!r} from the config is {layouts[key]['dim']} wide "
                f"({layouts[key]['history_length']} x [{terms}]) but the weights take {width}"
            )


@dataclass
class PreparedExport:
    """A checkpoint's policy with everything its files would say about themselves: `base` metadata
    (all observation layouts) and one `Spec` per file. The viewer runs `specs` in torch with the
    metadata a file would carry (`file_metadata`), so a checkpoint and its export drive the same loop."""

    cfg: object  # SonicConfig
    ac: nn.Module
    info: dict
    base: dict
    specs: list[Spec]


def prepare_export(checkpoint: str | Path) -> PreparedExport:
    """Load the checkpoint and build the graphs and metadata of every file (nothing traced or written).
    Raises ValueError when the config's observation layout does not fit the weights."""
    cfg, ac, info = load_for_export(checkpoint)
    robot = get_robot(cfg.robot.name)
    obs_dims, _ = _obs_dims(ac.state_dict())
    layouts, command = observation_layouts(cfg, robot)
    check_layouts(layouts, obs_dims, info["checkpoint"])
    base = base_metadata(cfg, robot, layouts, command, info)
    return PreparedExport(cfg, ac, info, base, export_specs(ac, obs_dims))


def export_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    tol: float = 1e-5,
    batch: int = 64,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> ExportReport:
    """Export every file (see the module docstring) after checking each against torch; all files
    are checked before the first is written, and each is written atomically."""
    import onnx

    log = log or (lambda _msg: None)
    torch.set_num_threads(1)
    prepared = prepare_export(checkpoint)
    ac, info, base, specs = prepared.ac, prepared.info, prepared.base, prepared.specs
    non_finite = [
        f"token.{n}"
        for n, p in ac.token.state_dict().items()
        if p.is_floating_point() and not torch.isfinite(p).all()
    ]
    if non_finite:
        raise ExportMismatch(
            f"{info['checkpoint']}: weights hold NaN/inf in {non_finite[:5]}; nothing exported"
        )
    models = []
    for i, spec in enumerate(specs):
        raw = to_onnx(spec)
        feed, skip = random_inputs(spec, ac, batch=batch, seed=seed + i)
        spec.max_abs_diff, spec.excluded_rows = compare(spec, raw, feed, skip, tol=tol), int(skip.sum())
        model = onnx.load_from_string(raw)
        onnx_meta.set_metadata(model, file_metadata(base, spec, tol=tol))
        onnx.checker.check_model(model)
        models.append(model)
        log(
            f"{spec.filename}: max |onnx - torch| = {spec.max_abs_diff:.3g} over "
            f"{batch - spec.excluded_rows} rows"
        )
    out = Path(out_dir)
    for spec, model in zip(specs, models):
        onnx_meta.save_atomic(model, out / spec.filename)
    onnx_meta.write_json_atomic(
        {
            "source": info,
            "tolerance": tol,
            "files": [
                {
                    "file": s.filename,
                    "kind": s.kind,
                    "encoder": s.encoder,
                    "max_abs_diff": s.max_abs_diff,
                    "rows_compared": batch - s.excluded_rows,
                }
                for s in specs
            ],
        },
        out / "export.json",
    )
    return ExportReport(out, specs)
